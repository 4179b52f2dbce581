import {
  type Checkpoint, type ClientRequest, type NewView, type PrePrepare, type PreparedProof, type Signed, type ViewChange,
  batchDigest
} from './messages.js'
import { bytesEqual } from '../../base/bytes.js'

// The pure half of PBFT's view change: checking the proofs a ViewChange carries and computing the
// new primary's pre-prepares (the set O) from a quorum of view changes (the set V). A backup
// validates a NewView by recomputing O from V itself, so a faulty new primary cannot drop or alter
// a request that may have committed in an earlier view.

/** f: the faulty replicas n replicas tolerate (n >= 3f+1). */
export function faultsTolerated (n: number): number {
  return Math.floor((n - 1) / 3)
}

/**
 * Replicas in a quorum of n: ceil((n+f+1)/2), which is 2f+1 when n = 3f+1. Any two quorums share
 * 2q-n >= f+1 replicas, so a correct one (2f+1 out of n = 5 would share only one, maybe faulty), and
 * q <= n-f, so the correct replicas alone form one. Every certificate (prepared, commit, stable
 * checkpoint, view changes in a NewView) needs q; the f+1 rules (client replies, joining a later
 * view) stay f+1.
 */
export function quorumSize (n: number): number {
  return Math.ceil((n + faultsTolerated(n) + 1) / 2)
}

export interface Quorum {
  replicas: readonly string[]
  f: number
  /** Replicas in a quorum: quorumSize(replicas.length), unless a test-only bug says otherwise. */
  size: number
  logWindow: number
  checkpointInterval: number
  /** True iff the signature is valid and the sender is a replica. */
  verify: (m: Signed) => boolean
}

export function primaryOf (replicas: readonly string[], view: number): string {
  return replicas[view % replicas.length]!
}

/** The digest a quorum of distinct replicas signed for checkpoint `seq`, or undefined. */
export function checkpointProofDigest (q: Quorum, seq: number, proof: Array<Signed<Checkpoint>>): Uint8Array | undefined {
  if (seq === 0) return proof.length === 0 ? new Uint8Array(32) : undefined
  const first = proof[0]
  if (first === undefined || seq % q.checkpointInterval !== 0) return undefined
  const signers = new Set<string>()
  for (const c of proof) {
    if (c.body.seq !== seq || !bytesEqual(c.body.stateDigest, first.body.stateDigest) || signers.has(c.from) || !q.verify(c)) return undefined
    signers.add(c.from)
  }
  return signers.size >= q.size ? first.body.stateDigest : undefined
}

/** A pre-prepare from the primary of an earlier view and matching prepares from distinct backups: a quorum in all. */
export function validPreparedProof (q: Quorum, p: PreparedProof, viewBefore: number): boolean {
  const pp = p.prePrepare
  const { view, seq, digest } = pp.body
  if (view >= viewBefore || pp.from !== primaryOf(q.replicas, view) || !bytesEqual(digest, batchDigest(pp.body.batch)) || !q.verify(pp)) return false
  const signers = new Set<string>()
  for (const pr of p.prepares) {
    const b = pr.body
    if (b.view !== view || b.seq !== seq || !bytesEqual(b.digest, digest) || pr.from === pp.from || signers.has(pr.from) || !q.verify(pr)) return false
    signers.add(pr.from)
  }
  return signers.size >= q.size - 1
}

/** A view change whose checkpoint proof and prepared certificates all check out (its own signature aside). */
export function validViewChange (q: Quorum, vc: ViewChange): boolean {
  if (checkpointProofDigest(q, vc.stableSeq, vc.checkpointProof) === undefined) return false
  const seqs = new Set<number>()
  for (const p of vc.prepared) {
    const seq = p.prePrepare.body.seq
    if (seq <= vc.stableSeq || seq > vc.stableSeq + q.logWindow || seqs.has(seq) || !validPreparedProof(q, p, vc.view)) return false
    seqs.add(seq)
  }
  return true
}

export interface NewViewPlan {
  /** min-s: the latest stable checkpoint any view change proves, with that proof. */
  stableSeq: number
  stableDigest: Uint8Array
  stableProof: Array<Signed<Checkpoint>>
  /** O: one pre-prepare per seq in (min-s, max-s]; the empty batch (null request) fills gaps. */
  prePrepares: PrePrepare[]
}

/**
 * Computes O from V (a quorum of view changes for `view`, already validated). Deterministic. A batch
 * committed at seq s in an earlier view had a quorum of commits, which shares a correct replica with
 * V: that replica's view change carries a prepared certificate for s (or a stable checkpoint >= s,
 * so min-s covers it), and no certificate of a later view can name another batch at s.
 */
export function planNewView (view: number, viewChanges: ViewChange[]): NewViewPlan {
  let best = viewChanges[0]!
  for (const vc of viewChanges) if (vc.stableSeq > best.stableSeq) best = vc
  const stableSeq = best.stableSeq
  const chosen = new Map<number, PrePrepare>()
  for (const vc of viewChanges) {
    for (const p of vc.prepared) {
      const pp = p.prePrepare.body
      const known = chosen.get(pp.seq)
      if (pp.seq > stableSeq && (known === undefined || pp.view > known.view)) chosen.set(pp.seq, pp)
    }
  }
  const maxSeq = Math.max(stableSeq, ...chosen.keys())
  const prePrepares: PrePrepare[] = []
  for (let seq = stableSeq + 1; seq <= maxSeq; seq++) {
    const batch: ClientRequest[] = chosen.get(seq)?.batch ?? []
    prePrepares.push({ type: 'PrePrepare', view, seq, digest: batchDigest(batch), batch })
  }
  return {
    stableSeq,
    stableDigest: best.checkpointProof[0]?.body.stateDigest ?? new Uint8Array(32),
    stableProof: best.checkpointProof,
    prePrepares
  }
}

export type NewViewVerdict = { ok: true, plan: NewViewPlan } | { ok: false, reason: string }

/**
 * Checks a NewView: a quorum of valid view changes for its view from distinct replicas, and pre-prepares
 * signed by the new primary that are exactly O recomputed from V. With `trustO` (a test-only bug)
 * the recomputation is skipped and the primary's O is believed.
 */
export function validateNewView (q: Quorum, nv: Signed<NewView>, trustO = false): NewViewVerdict {
  const { view, viewChanges, prePrepares } = nv.body
  const primary = primaryOf(q.replicas, view)
  if (nv.from !== primary) return { ok: false, reason: 'new view not from the primary' }
  const senders = new Set<string>()
  for (const vc of viewChanges) {
    if (vc.body.view !== view || senders.has(vc.from) || !q.verify(vc) || !validViewChange(q, vc.body)) return { ok: false, reason: `invalid view change from ${vc.from}` }
    senders.add(vc.from)
  }
  if (senders.size < q.size) return { ok: false, reason: `${senders.size} view changes, a quorum is ${q.size}` }
  for (const pp of prePrepares) {
    if (pp.from !== primary || pp.body.view !== view || !bytesEqual(pp.body.digest, batchDigest(pp.body.batch)) || !q.verify(pp)) {
      return { ok: false, reason: 'pre-prepare not signed by the new primary for this view' }
    }
  }
  const plan = planNewView(view, viewChanges.map((vc) => vc.body))
  if (trustO) return { ok: true, plan: { ...plan, prePrepares: prePrepares.map((pp) => pp.body) } }
  const expected = plan.prePrepares
  if (expected.length !== prePrepares.length) return { ok: false, reason: `O has ${prePrepares.length} pre-prepares, V implies ${expected.length}` }
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!
    const got = prePrepares[i]!.body
    if (got.seq !== e.seq || !bytesEqual(got.digest, e.digest)) return { ok: false, reason: `O differs from V at seq ${e.seq}` }
  }
  return { ok: true, plan }
}

import { bytesEqual } from '../../base/bytes.js'
import type { Commit, Committed, PrePrepare, Signed } from './messages.js'
import { type Quorum, primaryOf } from './view-change.js'

// Catching up from commit certificates: a pre-prepare with a quorum of matching commits proves its
// batch committed at its seq in every view, so a replica that missed the normal case may execute it
// whatever its view. Certificates for (low, low + L] are kept across view changes until the stable
// checkpoint passes them, and handed to a replica whose Status shows it behind.

interface Certificate { prePrepare: Signed<PrePrepare>, commits: Array<Signed<Commit>>, signed?: Signed<Committed> }

export class CommitCertificates {
  readonly #quorum: Quorum
  readonly #sign: (body: Committed) => Signed<Committed>
  readonly #validBatch: (pp: PrePrepare) => boolean
  readonly #certificates = new Map<number, Certificate>()
  /** Per replica, when we last answered its Status (bounded by n). */
  readonly #answered = new Map<string, number>()

  constructor (init: { quorum: Quorum, sign: (body: Committed) => Signed<Committed>, validBatch: (pp: PrePrepare) => boolean }) {
    this.#quorum = init.quorum
    this.#sign = init.sign
    this.#validBatch = init.validBatch
  }

  /** The pre-prepare of the certificate held for seq. */
  prePrepareAt (seq: number): Signed<PrePrepare> | undefined {
    return this.#certificates.get(seq)?.prePrepare
  }

  /** Keeps a certificate for seq in the window above low if the commits hold a full quorum matching the pre-prepare. */
  keep (pp: Signed<PrePrepare>, commits: Array<Signed<Commit>>, low: number): void {
    const { view, seq, digest } = pp.body
    if (this.#certificates.has(seq) || seq <= low || seq > low + this.#quorum.logWindow) return
    const matching = commits.filter((c) => c.body.view === view && c.body.seq === seq && bytesEqual(c.body.digest, digest))
    if (new Set(matching.map((c) => c.from)).size !== matching.length || matching.length < this.#quorum.size) return
    this.#certificates.set(seq, { prePrepare: pp, commits: matching.slice(0, this.#quorum.size) })
  }

  /** The primary's pre-prepare for a valid batch and commits for it from a quorum of distinct replicas. */
  valid (c: Committed): boolean {
    const pp = c.prePrepare
    const { view, seq, digest } = pp.body
    if (pp.from !== primaryOf(this.#quorum.replicas, view) || !this.#validBatch(pp.body) || !this.#quorum.verify(pp)) return false
    const signers = new Set<string>()
    for (const commit of c.commits) {
      const b = commit.body
      if (b.view !== view || b.seq !== seq || !bytesEqual(b.digest, digest) || signers.has(commit.from) || !this.#quorum.verify(commit)) return false
      signers.add(commit.from)
    }
    return signers.size >= this.#quorum.size
  }

  /**
   * Whether to answer a Status from `from` now: at most once every gapTicks (a correct replica asks
   * every half timeout, give or take network jitter), so a faulty one cannot make us resend the window at will.
   */
  mayAnswer (from: string, nowTick: number, gapTicks: number): boolean {
    const last = this.#answered.get(from)
    if (last !== undefined && nowTick - last < gapTicks) return false
    this.#answered.set(from, nowTick)
    return true
  }

  /** The certificates held for seqs in [from, to], each signed once as a Committed. */
  signedIn (from: number, to: number): Array<Signed<Committed>> {
    const out: Array<Signed<Committed>> = []
    for (let seq = from; seq <= to; seq++) {
      const c = this.#certificates.get(seq)
      if (c === undefined) continue
      c.signed ??= this.#sign({ type: 'Committed', prePrepare: c.prePrepare, commits: c.commits })
      out.push(c.signed)
    }
    return out
  }

  collectThrough (seq: number): void {
    for (const s of [...this.#certificates.keys()]) if (s <= seq) this.#certificates.delete(s)
  }
}

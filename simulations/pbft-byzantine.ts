import { type Committed, type PbftMessage, type Signed, type ViewChange, batchDigest, sign } from '../consensus/pbft/messages.js'
import { quorumSize } from '../consensus/pbft/view-change.js'
import type { Signer } from '../base/ed25519.js'
import type { Prng } from './world/prng.js'

// Byzantine organisations for the PBFT simulator. A faulty replica runs the honest core (so it
// knows what to say) and lies on the way out: each outbound message, per recipient, becomes zero,
// one or several messages, signed with its own key (it has no other) or forged with it. A censor
// lies on the way in instead: it never lets one client's requests reach its core, so as primary it
// orders everyone else's (the progress timer keeps restarting) and never that client's.

export const BYZANTINE_BEHAVIOURS = ['silent', 'equivocate', 'forge', 'replay', 'conflicting-view-changes', 'bad-new-view', 'censor'] as const
export type ByzantineBehaviour = typeof BYZANTINE_BEHAVIOURS[number]

const REPLAY_BUFFER_MAX = 256

export class ByzantineReplica {
  readonly #recorded: PbftMessage[] = []
  /** The client a censor silences, drawn from the seed. */
  readonly censored: string | undefined

  constructor (
    readonly id: string,
    readonly behaviour: ByzantineBehaviour,
    readonly replicas: readonly string[],
    readonly signer: Signer,
    readonly prng: Prng,
    clients: readonly string[]
  ) {
    if (behaviour === 'censor') this.censored = prng.pick(clients)
  }

  /** Sees what arrives (to replay it later); false: the core never gets it. */
  inbound (m: PbftMessage): boolean {
    if (this.behaviour === 'replay') {
      if (this.#recorded.length >= REPLAY_BUFFER_MAX) this.#recorded.splice(this.prng.intInclusive(0, REPLAY_BUFFER_MAX - 1), 1)
      this.#recorded.push(m)
    }
    return m.body.type !== 'Request' || this.acceptsClient(m.body.request.client)
  }

  /** False for the censored client: its requests (from it or forwarded) never reach the core. */
  acceptsClient (client: string): boolean {
    return client !== this.censored
  }

  /** What actually goes to `to` instead of m; raw bytes are garbage on the wire. */
  outbound (to: string, m: PbftMessage): Array<PbftMessage | Uint8Array> {
    const half = this.replicas.indexOf(to) % 2 === 0
    const b = m.body
    switch (this.behaviour) {
      case 'silent':
        return []
      case 'censor':
        return [m]
      case 'equivocate':
        // Different batches (or votes) to different replicas for the same (view, seq).
        if (b.type === 'PrePrepare' && half) {
          const batch = b.batch.length > 1 ? [...b.batch].reverse() : []
          return [sign(this.signer, this.id, { ...b, batch, digest: batchDigest(batch) })]
        }
        if ((b.type === 'Prepare' || b.type === 'Commit') && half) return [sign(this.signer, this.id, { ...b, digest: batchDigest([]) })]
        return [m]
      case 'forge': {
        // Claims to be another replica (signing with its own key), and sprays garbage now and then.
        const victim = this.prng.pick(this.replicas.filter((r) => r !== this.id && r !== to))
        const out: Array<PbftMessage | Uint8Array> = [m, sign(this.signer, victim, b.type === 'Prepare' || b.type === 'Commit' ? { ...b, digest: batchDigest([]) } : b)]
        if (this.prng.chance(1, 10)) out.push(this.prng.bytes(this.prng.intInclusive(1, 200)))
        if (b.type === 'Committed') out.push(this.#forgedCommitted(b))
        return out
      }
      case 'replay': {
        const out: Array<PbftMessage | Uint8Array> = [m]
        if (this.#recorded.length > 0 && this.prng.chance(1, 3)) out.push(this.prng.pick(this.#recorded))
        return out
      }
      case 'conflicting-view-changes':
        if (b.type !== 'ViewChange') return [m]
        // One view change to half the replicas, another (hiding its prepared certificates) to the rest,
        // and a third claiming a prepared certificate it forged.
        if (half) return [sign(this.signer, this.id, { ...b, prepared: [] })]
        return [m, this.#forgedCertificate(m as Signed<ViewChange>)]
      case 'bad-new-view': {
        if (b.type !== 'NewView') return [m]
        // O without the requests V proves may have committed: null requests everywhere.
        const prePrepares = b.prePrepares.map((pp) => sign(this.signer, this.id, { ...pp.body, batch: [], digest: batchDigest([]) }))
        return [sign(this.signer, this.id, { ...b, prePrepares, viewChanges: half ? b.viewChanges : b.viewChanges.slice(1) })]
      }
    }
  }

  /** The same seq committed with the null request instead: every vote in it signed with its own key. */
  #forgedCommitted (c: Committed): PbftMessage {
    const { view, seq } = c.prePrepare.body
    const digest = batchDigest([])
    const prePrepare = sign(this.signer, c.prePrepare.from, { type: 'PrePrepare', view, seq, digest, batch: [] })
    const commits = c.commits.map((m) => sign(this.signer, m.from, { ...m.body, digest }))
    return sign(this.signer, this.id, { type: 'Committed', prePrepare, commits })
  }

  #forgedCertificate (vc: Signed<ViewChange>): PbftMessage {
    const seq = vc.body.stableSeq + 1
    const batch = [{ client: 'mallory', timestamp: 1, op: new Uint8Array([0]) }]
    const digest = batchDigest(batch)
    const view = Math.max(0, vc.body.view - 1)
    const primary = this.replicas[view % this.replicas.length]!
    const prePrepare = sign(this.signer, primary, { type: 'PrePrepare', view, seq, digest, batch })
    const prepares = this.replicas.filter((r) => r !== primary).slice(0, quorumSize(this.replicas.length) - 1).map((r) => sign(this.signer, r, { type: 'Prepare', view, seq, digest }))
    return sign(this.signer, this.id, { ...vc.body, prepared: [{ prePrepare, prepares }] })
  }
}

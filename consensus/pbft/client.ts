import type { VerifyFn } from './pbft.js'
import { toHex } from '../../base/bytes.js'
import { type PbftMessage, type Reply, type Signed, signingBytes } from './messages.js'

// The client side of PBFT's reply rule: a result is accepted once f+1 distinct replicas sent the
// same signed result for the request, so at least one correct replica vouches for it.

export class ReplyCollector {
  readonly #votes = new Map<string, Set<string>>()

  constructor (
    readonly client: string,
    readonly timestamp: number,
    readonly f: number,
    readonly publicKeys: ReadonlyMap<string, Uint8Array>,
    readonly verify: VerifyFn
  ) {}

  /** Counts one reply; returns the accepted result once f+1 replicas agree on it. */
  add (m: PbftMessage): Uint8Array | undefined {
    const b = m.body
    if (b.type !== 'Reply' || b.client !== this.client || b.timestamp !== this.timestamp) return undefined
    const key = this.publicKeys.get(m.from)
    if (key === undefined || !this.verify(key, signingBytes(m.from, b), m.signature)) return undefined
    const result = toHex(b.result)
    let voters = this.#votes.get(result)
    if (voters === undefined) {
      // One result per replica: a replica that already voted for another result is ignored.
      for (const v of this.#votes.values()) if (v.has(m.from)) return undefined
      voters = new Set()
      this.#votes.set(result, voters)
    }
    voters.add(m.from)
    return voters.size >= this.f + 1 ? (m as Signed<Reply>).body.result : undefined
  }
}

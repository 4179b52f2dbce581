import type { CommittedBatch, Evidence } from '../consensus/pbft/pbft.js'
import { toHex } from '../base/bytes.js'
import { InvariantViolation } from './raft-checkers.js'

// PBFT safety across honest replicas, checked as batches commit: agreement (one batch per seq),
// executed histories that are prefixes of one another (same batch at every seq, states equal at
// every checkpoint), and evidence that only ever names a faulty replica.

export class PbftCheckers {
  readonly #batchAt = new Map<number, { digest: string, replica: string, view: number }>()
  readonly #stateAt = new Map<number, { digest: string, replica: string }>()
  readonly #executedTo = new Map<string, number>()
  /** Request keys (client, timestamp) some honest replica executed. */
  readonly executedRequests = new Set<string>()
  evidence = 0

  constructor (readonly faulty: ReadonlySet<string>) {}

  /** Agreement and prefix: every honest replica executes the same batch at each seq, in seq order. */
  recordCommitted (replica: string, b: CommittedBatch): void {
    const digest = toHex(b.digest)
    const known = this.#batchAt.get(b.seq)
    if (known === undefined) this.#batchAt.set(b.seq, { digest, replica, view: b.view })
    else if (known.digest !== digest) {
      throw new InvariantViolation('agreement', `${replica} committed ${digest.slice(0, 12)} at seq ${b.seq} in view ${b.view}, ${known.replica} committed ${known.digest.slice(0, 12)} in view ${known.view}`)
    }
    const last = this.#executedTo.get(replica) ?? 0
    if (b.seq !== last + 1) throw new InvariantViolation('prefix', `${replica} executed seq ${b.seq} after ${last}`)
    this.#executedTo.set(replica, b.seq)
    for (const r of b.requests) this.executedRequests.add(requestKey(r.client, r.timestamp))
  }

  /** A fetched state replaces the history up to seq: it must be the state the others reached there. */
  recordStateInstalled (replica: string, seq: number, stateDigest: Uint8Array): void {
    this.recordState(replica, seq, stateDigest)
    this.#executedTo.set(replica, seq)
  }

  recordState (replica: string, seq: number, stateDigest: Uint8Array): void {
    const digest = toHex(stateDigest)
    const known = this.#stateAt.get(seq)
    if (known === undefined) this.#stateAt.set(seq, { digest, replica })
    else if (known.digest !== digest) throw new InvariantViolation('state agreement', `${replica} and ${known.replica} hold different states at checkpoint ${seq}`)
  }

  /** Evidence is proof: it may never name a correct replica. */
  recordEvidence (replica: string, e: Evidence): void {
    this.evidence++
    if (!this.faulty.has(e.replica)) throw new InvariantViolation('false evidence', `${replica} produced evidence against correct replica ${e.replica}`)
  }
}

export function requestKey (client: string, timestamp: number): string {
  return `${client}#${timestamp}`
}

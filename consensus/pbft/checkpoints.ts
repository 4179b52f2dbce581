import assert from 'node:assert/strict'
import { bytesEqual } from '../../base/bytes.js'
import type { Checkpoint, Signed } from './messages.js'
import type { StableCheckpoint } from './outbox.js'
import { type Quorum, checkpointProofDigest } from './view-change.js'

// Checkpoint votes and the stable checkpoint a quorum of them proves: the low watermark, below which
// the log is garbage. Votes near the window are kept by seq and sender; of votes far beyond it (we
// fell far behind: a new host restored an old promise log) only each replica's highest, so memory
// stays bounded by n while a quorum of them still proves where the others are.

export class CheckpointTracker {
  readonly #quorum: Quorum
  #stable: StableCheckpoint = { seq: 0, stateDigest: new Uint8Array(32), proof: [] }
  readonly #votes = new Map<number, Map<string, Signed<Checkpoint>>>()
  readonly #far = new Map<string, Signed<Checkpoint>>()
  /** Ours, resent until stable (a replica cut off while one became stable learns it this way). */
  readonly #own = new Map<number, Signed<Checkpoint>>()

  constructor (quorum: Quorum) {
    this.#quorum = quorum
  }

  get stable (): StableCheckpoint {
    return this.#stable
  }

  get low (): number {
    return this.#stable.seq
  }

  /**
   * The stable checkpoint from the org's own promise log: a quorum of distinct replicas agreeing on
   * one digest. Their signatures are not checked again — the log holds only what a host of this org
   * verified before committing it — because a new host has not yet learnt which node keys speak for
   * the other orgs (it learns them from their envelopes, which go to hosts it has not yet become):
   * checking them here refused every start until then, and left the org without a replica.
   */
  restore (stable: StableCheckpoint): void {
    const fromReplicas = { ...this.#quorum, verify: (m: Signed) => this.#quorum.replicas.includes(m.from) }
    assert.ok(checkpointProofDigest(fromReplicas, stable.seq, stable.proof) !== undefined, 'restored stable checkpoint without a quorum\'s proof')
    this.#stable = stable
  }

  keepOwn (cp: Signed<Checkpoint>): void {
    this.#own.set(cp.body.seq, cp)
  }

  /** Our checkpoints from the stable one on. */
  ownToResend (): Array<Signed<Checkpoint>> {
    return [...this.#own].filter(([seq]) => seq >= this.low).map(([, cp]) => cp)
  }

  /** Counts a vote near the window; returns the checkpoint it makes stable, if any. */
  add (m: Signed<Checkpoint>): StableCheckpoint | undefined {
    const { seq } = m.body
    let bySender = this.#votes.get(seq)
    if (bySender === undefined) {
      bySender = new Map()
      this.#votes.set(seq, bySender)
    }
    if (!bySender.has(m.from)) bySender.set(m.from, m)
    return this.#proven(seq, m.body.stateDigest, [...bySender.values()])
  }

  /** Counts a vote far beyond the window (only the sender's highest counts); returns the checkpoint it makes stable, if any. */
  addFar (m: Signed<Checkpoint>): StableCheckpoint | undefined {
    const known = this.#far.get(m.from)
    if (known !== undefined && known.body.seq >= m.body.seq) return undefined
    this.#far.set(m.from, m)
    return this.#proven(m.body.seq, m.body.stateDigest, [...this.#far.values()].filter((c) => c.body.seq === m.body.seq))
  }

  /** Moves the low watermark to a proven checkpoint and drops the votes below it; false if it is not ahead. */
  adopt (stable: StableCheckpoint): boolean {
    if (stable.seq <= this.low) return false
    const own = this.#own.get(stable.seq)
    assert.ok(own === undefined || bytesEqual(own.body.stateDigest, stable.stateDigest), 'our state diverged from a quorum at a checkpoint')
    this.#stable = stable
    for (const seq of [...this.#votes.keys()]) if (seq < stable.seq) this.#votes.delete(seq)
    for (const [r, c] of this.#far) if (c.body.seq <= stable.seq) this.#far.delete(r)
    for (const seq of [...this.#own.keys()]) if (seq < stable.seq) this.#own.delete(seq)
    return true
  }

  #proven (seq: number, stateDigest: Uint8Array, votes: Array<Signed<Checkpoint>>): StableCheckpoint | undefined {
    const matching = votes.filter((c) => bytesEqual(c.body.stateDigest, stateDigest))
    return matching.length >= this.#quorum.size ? { seq, stateDigest, proof: matching } : undefined
  }
}

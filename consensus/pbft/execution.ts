import assert from 'node:assert/strict'
import { bytesEqual } from '../../base/bytes.js'
import type { ClientRequest } from './messages.js'
import type { CommittedBatch, StableCheckpoint } from './outbox.js'

// Committed batches on their way to the application: each waits for its predecessors, executes in
// seq order, and is held until the shell applied it (its requests are answered then). Behind the
// others' stable checkpoint nothing executes: the shell fetches the state it leads to instead.

export class Execution {
  #lastExecuted = 0
  #lastApplied = 0
  /** Committed, waiting for a predecessor. */
  readonly #committed = new Map<number, CommittedBatch>()
  /** Executed, handed out in a Ready, not yet applied(): the requests to answer. */
  readonly #unapplied = new Map<number, CommittedBatch>()
  #fetching: { seq: number, stateDigest: Uint8Array } | undefined
  #fetchAnnounced = false

  get lastExecuted (): number { return this.#lastExecuted }
  /** The state transfer under way, if any. */
  get fetching (): { seq: number, stateDigest: Uint8Array } | undefined { return this.#fetching }

  /** The application state reflects seq (a restart). */
  restore (executedSeq: number): void {
    this.#lastExecuted = this.#lastApplied = executedSeq
  }

  isCommitted (seq: number): boolean {
    return this.#committed.has(seq)
  }

  commit (batch: CommittedBatch): void {
    if (batch.seq > this.#lastExecuted) this.#committed.set(batch.seq, batch)
  }

  /** Executes the next batch in order, if it is committed and no state transfer is under way. */
  next (): CommittedBatch | undefined {
    if (this.#fetching !== undefined) return undefined
    const c = this.#committed.get(this.#lastExecuted + 1)
    if (c === undefined) return undefined
    this.#committed.delete(c.seq)
    this.#lastExecuted = c.seq
    this.#unapplied.set(c.seq, c)
    return c
  }

  /** The shell applied batch seq with this many results: the batch, to answer its requests. */
  applied (seq: number, results: number): CommittedBatch {
    assert.equal(seq, this.#lastApplied + 1, 'batches must be applied in order')
    assert.ok(seq <= this.#lastExecuted, 'applied a batch that was not committed')
    this.#lastApplied = seq
    const batch = this.#unapplied.get(seq)
    this.#unapplied.delete(seq)
    assert.ok(batch !== undefined && results === batch.requests.length, 'one result per request')
    return batch
  }

  /** Executed but not applied yet (its reply is on the way): ordering r again would apply it twice. Bounded by the window. */
  awaitsApply (r: ClientRequest): boolean {
    for (const b of this.#unapplied.values()) if (b.requests.some((e) => e.client === r.client && e.timestamp >= r.timestamp)) return true
    return false
  }

  /** Lagging behind the others' garbage collection: fetch the stable checkpoint's state instead. */
  fetchIfBehind (stable: StableCheckpoint): void {
    if (this.#lastExecuted >= stable.seq) return
    this.#fetching = { seq: stable.seq, stateDigest: stable.stateDigest }
    this.#fetchAnnounced = false
  }

  /** Asks the shell again for the state (the last fetch may have failed). */
  refetch (): void {
    if (this.#fetching !== undefined) this.#fetchAnnounced = false
  }

  /** The fetch the next Ready asks for, announced once until refetch(). */
  hasFetchToAnnounce (): boolean {
    return this.#fetching !== undefined && !this.#fetchAnnounced
  }

  announceFetch (): { seq: number, stateDigest: Uint8Array } | undefined {
    if (!this.hasFetchToAnnounce()) return undefined
    this.#fetchAnnounced = true
    return this.#fetching
  }

  /** The shell installed the state of seq; false if that is not the fetch under way. */
  installed (seq: number, stateDigest: Uint8Array): boolean {
    if (this.#fetching === undefined || this.#fetching.seq !== seq || !bytesEqual(this.#fetching.stateDigest, stateDigest)) return false
    this.#fetching = undefined
    this.#lastExecuted = seq
    this.#lastApplied = seq
    for (const s of [...this.#unapplied.keys()]) if (s <= seq) this.#unapplied.delete(s)
    return true
  }

  collectThrough (seq: number): void {
    for (const s of [...this.#committed.keys()]) if (s <= seq) this.#committed.delete(s)
  }
}

import assert from 'node:assert/strict'
import type { ConfState, Entry, HardState, Snapshot } from '../types.js'

// The synchronous in-memory view of the log that the core reads (etcd's MemoryStorage). It is
// rebuilt from durable storage on restart (raft-persistence.ts load()); the core appends to it
// and tracks itself which suffix is not yet durable. Invariant: entries are contiguous from
// firstIndex, and firstIndex <= snapshot.index + 1 <= lastIndex + 1 (a few entries at or below
// the snapshot may be retained so lagging followers can catch up without a snapshot).

export interface RaftStorageState {
  hardState: HardState
  snapshot: Snapshot
  entries: Entry[]
}

export function emptySnapshot (conf: ConfState): Snapshot {
  return { meta: { index: 0, term: 0, conf }, data: new Uint8Array() }
}

export class RaftStorage {
  hardState: HardState
  #snapshot: Snapshot
  #entries: Entry[]
  #firstIndex: number

  constructor (state: RaftStorageState) {
    this.hardState = { ...state.hardState }
    this.#snapshot = state.snapshot
    this.#entries = [...state.entries]
    this.#firstIndex = this.#entries[0]?.index ?? state.snapshot.meta.index + 1
    this.#entries.forEach((e, i) => assert.equal(e.index, this.#firstIndex + i, 'stored log is not contiguous'))
    assert.ok(this.#firstIndex <= state.snapshot.meta.index + 1, 'gap between snapshot and log')
    assert.ok(this.lastIndex() >= state.snapshot.meta.index, 'log ends before snapshot')
  }

  /**
   * A founding member: the initial configuration is a snapshot at index 1, term 1 (empty data =
   * empty state machine), identical on every founder, so nodes that join later receive it from
   * the leader as an ordinary snapshot.
   */
  static bootstrap (conf: ConfState): RaftStorage {
    const snapshot: Snapshot = { meta: { index: 1, term: 1, conf }, data: new Uint8Array() }
    return new RaftStorage({ hardState: { term: 1, vote: '', commit: 1 }, snapshot, entries: [] })
  }

  /** A node joining an existing group: knows nothing until the leader sends it a snapshot. */
  static joining (): RaftStorage {
    return new RaftStorage({ hardState: { term: 0, vote: '', commit: 0 }, snapshot: emptySnapshot({ voters: [], learners: [] }), entries: [] })
  }

  snapshot (): Snapshot { return this.#snapshot }
  firstIndex (): number { return this.#firstIndex }
  lastIndex (): number { return this.#firstIndex + this.#entries.length - 1 }

  /** Term of entry i, or undefined when compacted away or beyond the end. */
  term (index: number): number | undefined {
    if (index === this.#snapshot.meta.index) return this.#snapshot.meta.term
    if (index < this.#firstIndex || index > this.lastIndex()) return undefined
    return this.#entries[index - this.#firstIndex]!.term
  }

  entry (index: number): Entry | undefined {
    if (index < this.#firstIndex) return undefined
    return this.#entries[index - this.#firstIndex]
  }

  /** Entries in [low, high), at most countMax, and within bytesMax (but at least one). */
  entries (low: number, high: number, countMax = Infinity, bytesMax = Infinity): Entry[] {
    assert.ok(low >= this.#firstIndex, 'entries requested below firstIndex')
    const out: Entry[] = []
    let bytes = 0
    for (let i = low; i < Math.min(high, this.lastIndex() + 1) && out.length < countMax; i++) {
      const e = this.#entries[i - this.#firstIndex]!
      bytes += e.data.length + 32
      if (out.length > 0 && bytes > bytesMax) break
      out.push(e)
    }
    return out
  }

  /** Appends, replacing any suffix from entries[0].index on. */
  append (entries: Entry[]): void {
    const first = entries[0]
    if (first === undefined) return
    assert.ok(first.index >= this.#firstIndex && first.index <= this.lastIndex() + 1, 'append leaves a gap')
    this.#entries.length = first.index - this.#firstIndex
    for (const e of entries) {
      assert.equal(e.index, this.lastIndex() + 1, 'appended entries are not contiguous')
      this.#entries.push(e)
    }
  }

  /** Replaces the whole log with a snapshot received from the leader. */
  installSnapshot (snapshot: Snapshot): void {
    this.#snapshot = snapshot
    this.#entries = []
    this.#firstIndex = snapshot.meta.index + 1
  }

  /** Records a locally taken snapshot and drops entries below firstIndexKept. */
  compact (snapshot: Snapshot, firstIndexKept: number): void {
    assert.ok(snapshot.meta.index >= this.#snapshot.meta.index, 'snapshot goes backwards')
    assert.ok(snapshot.meta.index <= this.lastIndex(), 'snapshot beyond the log')
    assert.ok(firstIndexKept <= snapshot.meta.index + 1, 'compaction would leave a gap')
    const drop = Math.max(0, firstIndexKept - this.#firstIndex)
    this.#entries.splice(0, drop)
    this.#firstIndex += drop
    this.#snapshot = snapshot
  }
}

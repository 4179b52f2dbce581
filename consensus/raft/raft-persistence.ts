import { encode } from 'cborg'
import type { BatchOp, Storage } from '../../base/storage.js'
import type { ConfState, Entry, HardState, Snapshot } from '../types.js'
import { RaftDecodeError } from './errors.js'
import { decodeCbor, entryFromWire, entryToWire, snapshotFromWire, snapshotToWire } from './messages.js'
import type { RaftReady } from './raft.js'
import { RaftStorage } from './raft-storage.js'

// Durable Raft state through the async Storage seam. Each Ready is written as ONE atomic, synced
// batch (hard state + entries + snapshot + deletions), so a crash leaves either all of it or none.
// A Ready whose only change is a higher commit index writes nothing (etcd's MustSync rule): the
// commit index is recoverable from the leader, so a stale stored commit only delays re-applying
// after a restart; it rides along with the next write. That was every other synced batch.
// Keys: raft/<group>/hardstate, raft/<group>/snapshot, raft/<group>/log/<20-digit index>.

export function logKey (group: string, index: number): string {
  return `raft/${group}/log/${index.toString().padStart(20, '0')}`
}

export class RaftPersistence {
  readonly #storage: Storage
  readonly #group: string
  /** The stored log occupies [#firstIndex, #lastIndex]; empty when first > last. */
  #firstIndex = 1
  #lastIndex = 0
  #tail: Promise<void> = Promise.resolve()
  /** The newest hard state handed to save(), and the one last written. */
  #hardState: HardState | undefined
  #storedHardState: HardState | undefined

  constructor (storage: Storage, group: string) {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(group)) throw new RangeError('raft group names are 1-64 [A-Za-z0-9_-]')
    this.#storage = storage
    this.#group = group
  }

  /**
   * Rebuilds the in-memory view after a restart. Founders pass the group's initial configuration
   * (their bootstrap snapshot is implied, never stored); a joining node passes nothing.
   */
  async load (founders?: ConfState): Promise<RaftStorage> {
    const initial = founders === undefined ? RaftStorage.joining() : RaftStorage.bootstrap(founders)
    const hsBytes = await this.#storage.get(`raft/${this.#group}/hardstate`)
    const snapBytes = await this.#storage.get(`raft/${this.#group}/snapshot`)
    const hardState = hsBytes === undefined ? initial.hardState : record(() => hardStateFromWire(hsBytes))
    const snapshot = snapBytes === undefined ? initial.snapshot() : record(() => snapshotFromWire(decodeCbor(snapBytes, 'raft-record-malformed')))
    const entries: Entry[] = []
    for await (const [key, value] of this.#storage.iterate(`raft/${this.#group}/log/`)) {
      const e = record(() => entryFromWire(decodeCbor(value, 'raft-record-malformed')))
      const expected = entries.length === 0 ? e.index : entries[entries.length - 1]!.index + 1
      if (key !== logKey(this.#group, e.index) || e.index !== expected) {
        throw new RaftDecodeError('raft-record-malformed', `log entry ${key} out of place`)
      }
      entries.push(e)
    }
    const first = entries[0]?.index ?? snapshot.meta.index + 1
    const last = first + entries.length - 1
    if (first > snapshot.meta.index + 1 || last < snapshot.meta.index || hardState.commit > last) {
      throw new RaftDecodeError('raft-record-malformed', 'stored log does not fit its snapshot and hard state')
    }
    this.#firstIndex = first
    this.#lastIndex = last
    this.#hardState = this.#storedHardState = hardState
    return new RaftStorage({ hardState, snapshot, entries })
  }

  /** Persists what a Ready asks for, durably, before its messages may be sent. Saves run in call order. */
  save (rd: RaftReady): Promise<void> {
    const done = this.#tail.then(async () => await this.#save(rd))
    this.#tail = done.catch(() => {})
    return done
  }

  async #save (rd: RaftReady): Promise<void> {
    const ops: BatchOp[] = []
    let first = this.#firstIndex
    let last = this.#lastIndex
    const del = (from: number, to: number): void => {
      for (let i = from; i <= to; i++) ops.push({ type: 'del', key: logKey(this.#group, i) })
    }
    if (rd.compaction !== undefined) {
      ops.push(this.#putSnapshot(rd.compaction.snapshot))
      del(first, Math.min(last, rd.compaction.firstIndex - 1))
      first = Math.max(first, rd.compaction.firstIndex)
    }
    if (rd.snapshot !== undefined) {
      ops.push(this.#putSnapshot(rd.snapshot))
      del(first, last)
      first = rd.snapshot.meta.index + 1
      last = rd.snapshot.meta.index
    }
    const head = rd.entries[0]
    if (head !== undefined) {
      const tail = rd.entries[rd.entries.length - 1]!.index
      del(tail + 1, last) // a conflicting suffix the leader replaced
      for (const e of rd.entries) ops.push({ type: 'put', key: logKey(this.#group, e.index), value: encode(entryToWire(e)) })
      if (first > last) first = head.index
      last = tail
    }
    if (rd.hardState !== undefined) this.#hardState = rd.hardState
    const hs = this.#hardState
    const stored = this.#storedHardState
    if (hs !== undefined && (stored === undefined || hs.term !== stored.term || hs.vote !== stored.vote || (ops.length > 0 && hs.commit !== stored.commit))) {
      ops.push({ type: 'put', key: `raft/${this.#group}/hardstate`, value: hardStateToWire(hs) })
    }
    if (ops.length === 0) return
    await this.#storage.batch(ops)
    this.#firstIndex = first
    this.#lastIndex = last
    if (hs !== undefined) this.#storedHardState = hs
  }

  #putSnapshot (s: Snapshot): BatchOp {
    return { type: 'put', key: `raft/${this.#group}/snapshot`, value: encode(snapshotToWire(s)) }
  }
}

function hardStateToWire (hs: HardState): Uint8Array {
  return encode([hs.term, hs.vote, hs.commit])
}

function hardStateFromWire (bytes: Uint8Array): HardState {
  const v = decodeCbor(bytes, 'raft-record-malformed')
  if (!Array.isArray(v) || v.length !== 3 || !Number.isSafeInteger(v[0]) || typeof v[1] !== 'string' || !Number.isSafeInteger(v[2])) {
    throw new RaftDecodeError('raft-record-malformed', 'malformed hard state')
  }
  return { term: v[0] as number, vote: v[1], commit: v[2] as number }
}

/** Stored records reuse the wire decoders; a failure there is a corrupt record, not a bad message. */
function record<T> (decodeFn: () => T): T {
  try {
    return decodeFn()
  } catch (err) {
    if (err instanceof RaftDecodeError) throw new RaftDecodeError('raft-record-malformed', err.message)
    throw err
  }
}

import { encode } from 'cborg'
import type { RequestId } from '../types.js'
import { decodeCbor } from './messages.js'
import { RaftDecodeError } from './errors.js'

// Apply-side client sessions (Raft thesis §6.3): each client numbers its requests and retries with
// the same number, so a proposal committed twice is applied once and the retry gets the first
// result. One slot per client (clients issue one request at a time), evicted least-recently-used.
// Every replica applies the same entries in the same order, so every table evicts identically.

export type SessionCheck =
  | { kind: 'new' }
  | { kind: 'duplicate', result: Uint8Array }
  /** Older than the client's latest request: its answer is gone, the client moved on. */
  | { kind: 'stale' }

interface Session { seq: number, result: Uint8Array }

export class SessionTable {
  readonly #sessions = new Map<string, Session>()

  constructor (readonly clientsMax = 10_000) {}

  get size (): number { return this.#sessions.size }

  check (id: RequestId): SessionCheck {
    const s = this.#sessions.get(id.client)
    if (s === undefined || id.seq > s.seq) return { kind: 'new' }
    return id.seq === s.seq ? { kind: 'duplicate', result: s.result } : { kind: 'stale' }
  }

  record (id: RequestId, result: Uint8Array): void {
    this.#sessions.delete(id.client)
    this.#sessions.set(id.client, { seq: id.seq, result })
    if (this.#sessions.size > this.clientsMax) this.#sessions.delete(this.#sessions.keys().next().value!)
  }

  /** Applies op unless id was already applied; returns the (first) result either way. */
  applyOnce (id: RequestId | undefined, op: () => Uint8Array): SessionCheck & { result?: Uint8Array } {
    if (id === undefined) return { kind: 'new', result: op() }
    const seen = this.check(id)
    if (seen.kind !== 'new') return seen
    const result = op()
    this.record(id, result)
    return { kind: 'new', result }
  }

  /** Part of the state machine's snapshot (LRU order included). */
  encode (): Uint8Array {
    return encode([...this.#sessions].map(([client, s]) => [client, s.seq, s.result]))
  }

  static decode (bytes: Uint8Array, clientsMax?: number): SessionTable {
    const table = new SessionTable(clientsMax)
    const v = decodeCbor(bytes, 'raft-record-malformed')
    if (!Array.isArray(v) || v.length > table.clientsMax) throw new RaftDecodeError('raft-record-malformed', 'bad session table')
    for (const row of v) {
      if (!Array.isArray(row) || typeof row[0] !== 'string' || !Number.isSafeInteger(row[1]) || !(row[2] instanceof Uint8Array)) {
        throw new RaftDecodeError('raft-record-malformed', 'bad session row')
      }
      table.record({ client: row[0], seq: row[1] as number }, row[2])
    }
    return table
  }
}

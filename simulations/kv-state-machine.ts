import { decode, encode } from 'cborg'
import { SessionTable } from '../consensus/raft/dedup.js'
import type { StateMachine } from '../consensus/raft/driver.js'
import type { Entry } from '../consensus/types.js'

// The replicated state machine the simulators drive: a small key → string register store with
// put and compare-and-set; reads go through ReadIndex, not the log. Retried writes are deduplicated
// by the session table, which is part of the snapshot. It is the Raft driver's StateMachine (the
// constructor restores it from a snapshot) and, applied batch by batch, the PBFT federation's state.

export type KvWrite =
  | { kind: 'put', key: string, value: string }
  | { kind: 'cas', key: string, from: string | null, to: string }
export type KvResult = 'ok' | boolean

export class KvStateMachine implements StateMachine<KvResult> {
  #data = new Map<string, string>()
  #sessions: SessionTable

  constructor (readonly clientsMax: number, snapshot?: Uint8Array) {
    this.#sessions = new SessionTable(clientsMax)
    if (snapshot === undefined || snapshot.length === 0) return
    const [rows, sessions] = decode(snapshot) as [Array<[string, string]>, Uint8Array]
    this.#data = new Map(rows)
    this.#sessions = SessionTable.decode(sessions, clientsMax)
  }

  get (key: string): string | null {
    return this.#data.get(key) ?? null
  }

  /** Applies a committed entry; returns the result to hand the client (first application's result). */
  apply (e: Entry): KvResult | undefined {
    if (e.type !== 'normal' || e.data.length === 0) return undefined
    const applied = this.#sessions.applyOnce(e.requestId, () => encode(this.#execute(decodeWrite(e.data))))
    return applied.kind === 'stale' ? undefined : decode(applied.result!) as KvResult
  }

  snapshot (): Uint8Array {
    return encode([[...this.#data].sort(([a], [b]) => (a < b ? -1 : 1)), this.#sessions.encode()])
  }

  #execute (w: KvWrite): KvResult {
    if (w.kind === 'put') {
      this.#data.set(w.key, w.value)
      return 'ok'
    }
    if (this.get(w.key) !== w.from) return false
    this.#data.set(w.key, w.to)
    return true
  }
}

export function encodeWrite (w: KvWrite): Uint8Array {
  return encode(w.kind === 'put' ? ['put', w.key, w.value] : ['cas', w.key, w.from, w.to])
}

function decodeWrite (bytes: Uint8Array): KvWrite {
  const v = decode(bytes) as [string, string, string | null, string]
  return v[0] === 'put' ? { kind: 'put', key: v[1], value: v[2]! } : { kind: 'cas', key: v[1], from: v[2], to: v[3] }
}

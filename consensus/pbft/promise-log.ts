import {
  type Checkpoint, type PbftMessage, type PbftRestore, type Signed, type StableCheckpoint, decodePbftMessage, encodePbftMessage
} from './index.js'
import { decodeCanonical, encodeCanonical } from '../../base/codec.js'
import { FedmeshError } from '../../base/errors.js'

// The org's PBFT promises as part of its Raft-replicated task board, so every org member holds what
// the org's replica signed and whichever member leads next resumes the replica from them (PbftRestore)
// instead of from its own, possibly empty, store. One bounded log per genesis id. Applying is
// deterministic; promises at or below the stable checkpoint they record are dropped, and so are view
// changes and new views older than the latest new view (restore ignores them).
//
// Hosts are fenced: each replica driver is one host session, and the first record it commits (before
// it restores) begins its session; from then on a record of an earlier session is refused. A deposed
// host's record can commit late (a Raft proposal retried after its driver stopped, or an entry the
// next leader commits for it); had it been kept, the next restore would hold two different promises
// for one slot and resend the one that was never sent: the org would equivocate.

/** One Raft entry's worth: every promise of one PBFT Ready, and/or the executed mark. */
export interface PromiseRecord {
  promises: PbftMessage[]
  stable?: StableCheckpoint
  /** The application state reflects every batch up to seq; stateHash chains their digests. */
  executed?: { seq: number, stateHash: Uint8Array }
  /** The host session that made it; with begin, the session starts and earlier ones are fenced off. */
  host?: string
  begin?: boolean
}

/** What a replica restores from: undefined restore when the org never promised anything. */
export interface PromiseLogState { restore?: PbftRestore, stateHash: Uint8Array }

export const PROMISES_PER_GENESIS_MAX = 100_000
/** Promises in one record: a Ready holds at most a window of slots, each a few promises. */
export const PROMISES_PER_RECORD_MAX = 4096
export const GENESES_MAX = 8
const GENESIS_ID = /^[0-9a-f]{32}$/
const STATE_HASH_BYTES = 32

export const HOST_ID_LENGTH_MAX = 128

export class PromiseLogError extends FedmeshError {
  constructor (code: 'pbft-promise-malformed' | 'pbft-promise-log-full' | 'pbft-promise-superseded', message: string) {
    super(code, message)
    this.name = 'PromiseLogError'
  }
}

export function encodePromiseRecord (genesis: string, r: PromiseRecord): unknown[] {
  const row = [genesis, r.promises.map(encodePbftMessage), r.stable === undefined ? null : encodeStable(r.stable), r.executed === undefined ? null : [r.executed.seq, r.executed.stateHash]]
  return r.host === undefined ? row : [...row, r.host, r.begin === true]
}

/** Validates a record taken from a log entry (fields after the command name). */
export function decodePromiseRecord (v: unknown[]): { genesis: string, record: PromiseRecord } {
  const [genesis, promises, stable, executed, host, begin] = v
  if ((v.length !== 4 && v.length !== 6) || typeof genesis !== 'string' || !GENESIS_ID.test(genesis)) throw new PromiseLogError('pbft-promise-malformed', 'genesis must be a 32-hex-digit id')
  if (!Array.isArray(promises) || promises.length > PROMISES_PER_RECORD_MAX || !promises.every((p) => p instanceof Uint8Array)) {
    throw new PromiseLogError('pbft-promise-malformed', `promises must be at most ${PROMISES_PER_RECORD_MAX} byte strings`)
  }
  const record: PromiseRecord = { promises: promises.map((p) => decodeMessage(p as Uint8Array)) }
  if (stable !== null) {
    if (!(stable instanceof Uint8Array)) throw new PromiseLogError('pbft-promise-malformed', 'stable must be bytes')
    record.stable = decodeStable(stable)
  }
  if (executed !== null) {
    if (!Array.isArray(executed) || executed.length !== 2 || !seqNumber(executed[0]) || !(executed[1] instanceof Uint8Array) || executed[1].length !== STATE_HASH_BYTES) {
      throw new PromiseLogError('pbft-promise-malformed', 'executed must be [seq, 32-byte state hash]')
    }
    record.executed = { seq: executed[0], stateHash: executed[1] }
  }
  if (v.length === 6) {
    if (typeof host !== 'string' || host.length === 0 || host.length > HOST_ID_LENGTH_MAX || typeof begin !== 'boolean') {
      throw new PromiseLogError('pbft-promise-malformed', `host must be 1-${HOST_ID_LENGTH_MAX} characters and begin a boolean`)
    }
    record.host = host
    if (begin) record.begin = true
  }
  return { genesis, record }
}

interface GenesisLog { promises: PbftMessage[], stable?: StableCheckpoint, executedSeq: number, stateHash: Uint8Array, host?: string }

export class PbftPromiseLogs {
  /** Per genesis id, least recently appended first. */
  readonly #logs = new Map<string, GenesisLog>()

  /** Throws PromiseLogError (and changes nothing) when the genesis's log would exceed its bound, or for a fenced-off host's record. */
  append (genesis: string, r: PromiseRecord): void {
    const log = this.#logs.get(genesis) ?? { promises: [], executedSeq: 0, stateHash: new Uint8Array(STATE_HASH_BYTES) }
    if (r.begin !== true && r.host !== undefined && log.host !== undefined && r.host !== log.host) {
      throw new PromiseLogError('pbft-promise-superseded', `host ${r.host.slice(0, 32)} was superseded by ${log.host.slice(0, 32)}: its promises are refused`)
    }
    const host = r.begin === true ? r.host : log.host
    const stable = r.stable !== undefined && r.stable.seq > (log.stable?.seq ?? 0) ? r.stable : log.stable
    let promises = [...log.promises, ...r.promises]
    if (stable !== undefined && stable !== log.stable) promises = prune(promises, stable.seq)
    if (promises.length > PROMISES_PER_GENESIS_MAX) throw new PromiseLogError('pbft-promise-log-full', `the promise log of ${genesis.slice(0, 16)} would exceed ${PROMISES_PER_GENESIS_MAX} promises (no stable checkpoint?)`)
    const next: GenesisLog = { promises, executedSeq: log.executedSeq, stateHash: log.stateHash, ...(stable !== undefined ? { stable } : {}), ...(host !== undefined ? { host } : {}) }
    if (r.executed !== undefined && r.executed.seq > log.executedSeq) {
      next.executedSeq = r.executed.seq
      next.stateHash = r.executed.stateHash
    }
    this.#logs.delete(genesis)
    this.#logs.set(genesis, next)
    if (this.#logs.size > GENESES_MAX) this.#logs.delete(this.#logs.keys().next().value!)
  }

  state (genesis: string): PromiseLogState {
    const log = this.#logs.get(genesis)
    if (log === undefined || (log.promises.length === 0 && log.stable === undefined && log.executedSeq === 0)) return { stateHash: new Uint8Array(STATE_HASH_BYTES) }
    return { restore: { promises: [...log.promises], executedSeq: log.executedSeq, ...(log.stable !== undefined ? { stable: log.stable } : {}) }, stateHash: log.stateHash }
  }

  /** Promises held for a genesis (for status and tests). */
  size (genesis: string): number {
    return this.#logs.get(genesis)?.promises.length ?? 0
  }

  /** Deterministic: geneses in append-recency order, each log as one record. */
  encode (): unknown[] {
    return [...this.#logs].map(([genesis, log]) => encodePromiseRecord(genesis, {
      promises: log.promises, ...(log.stable !== undefined ? { stable: log.stable } : {}), executed: { seq: log.executedSeq, stateHash: log.stateHash },
      ...(log.host !== undefined ? { host: log.host, begin: true } : {})
    }))
  }

  static decode (rows: unknown): PbftPromiseLogs {
    if (!Array.isArray(rows) || rows.length > GENESES_MAX) throw new PromiseLogError('pbft-promise-malformed', 'bad promise logs')
    const logs = new PbftPromiseLogs()
    for (const row of rows) {
      if (!Array.isArray(row)) throw new PromiseLogError('pbft-promise-malformed', 'bad promise log row')
      const { genesis, record } = decodePromiseRecord(row)
      if (record.promises.length > PROMISES_PER_GENESIS_MAX) throw new PromiseLogError('pbft-promise-malformed', 'promise log over its bound')
      logs.#logs.set(genesis, {
        promises: record.promises, executedSeq: record.executed?.seq ?? 0, stateHash: record.executed?.stateHash ?? new Uint8Array(STATE_HASH_BYTES),
        ...(record.stable !== undefined ? { stable: record.stable } : {}), ...(record.host !== undefined ? { host: record.host } : {})
      })
    }
    return logs
  }
}

function prune (promises: PbftMessage[], stableSeq: number): PbftMessage[] {
  let latestNewView = -1
  for (const m of promises) if (m.body.type === 'NewView') latestNewView = Math.max(latestNewView, m.body.view)
  return promises.filter((m) => {
    const b = m.body
    if (b.type === 'ViewChange' || b.type === 'NewView') return b.view >= latestNewView
    if (b.type === 'Checkpoint') return b.seq >= stableSeq
    return !('seq' in b) || b.seq > stableSeq
  })
}

function decodeMessage (bytes: Uint8Array): PbftMessage {
  try {
    return decodePbftMessage(bytes)
  } catch (err) {
    throw new PromiseLogError('pbft-promise-malformed', `bad promise: ${(err as Error).message}`)
  }
}

function encodeStable (s: StableCheckpoint): Uint8Array {
  return encodeCanonical([s.seq, s.stateDigest, s.proof.map(encodePbftMessage)])
}

function decodeStable (bytes: Uint8Array): StableCheckpoint {
  const v = decodeCanonical(bytes, () => new PromiseLogError('pbft-promise-malformed', 'undecodable stable checkpoint'))
  if (!Array.isArray(v) || v.length !== 3 || !seqNumber(v[0]) || !(v[1] instanceof Uint8Array) || v[1].length !== STATE_HASH_BYTES || !Array.isArray(v[2]) ||
    v[2].length > PROMISES_PER_RECORD_MAX || !v[2].every((p) => p instanceof Uint8Array)) throw new PromiseLogError('pbft-promise-malformed', 'bad stable checkpoint')
  const proof = v[2].map((p: Uint8Array) => decodeMessage(p))
  if (!proof.every((m) => m.body.type === 'Checkpoint' && m.body.seq === v[0])) throw new PromiseLogError('pbft-promise-malformed', 'a stable checkpoint proof holds checkpoints of its seq')
  return { seq: v[0], stateDigest: v[1], proof: proof as Array<Signed<Checkpoint>> }
}

function seqNumber (x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0
}

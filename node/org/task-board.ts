import assert from 'node:assert/strict'
import { SessionTable } from '../../consensus/raft/dedup.js'
import type { Entry } from '../../consensus/types.js'
import { decodeCanonical, encodeCanonical } from '../../base/codec.js'
import { FedmeshError } from '../../base/errors.js'
import { FederationStateError } from '../federation/config.js'
import {
  type FederationBatch, type FederationInstall, FederationState, decodeFederationBatch, decodeFederationInstall, encodeFederationBatch, encodeFederationInstall
} from '../federation/state.js'
import { PbftPromiseLogs, PromiseLogError, decodePromiseRecord, encodePromiseRecord, type PromiseLogState, type PromiseRecord } from '../../consensus/pbft/promise-log.js'

// The organisation's replicated task board: the state machine its Raft log drives. Apply is
// deterministic (same entries in the same order give the same board on every node) and every
// command is checked whole before anything changes, so a refused command leaves no trace but its
// result. Retried proposals carry the same request id and apply once (the session table, part of
// the snapshot). Task ids are derived from the log index that created them: `t<index>`.
// The board also holds the org's PBFT promises (`pbft-promise` commands, see pbft-promise-log.ts),
// so they are replicated, snapshotted and restored with it.

export type TaskStatus = 'open' | 'claimed' | 'done' | 'failed'
export const TASK_STATUSES: readonly TaskStatus[] = ['open', 'claimed', 'done', 'failed']

export interface Task {
  id: string
  title: string
  capability: string
  payload: unknown
  /** Key (hex) of the node that proposed it. */
  proposer: string
  status: TaskStatus
  assignee: string | null
  result: unknown
  createdIndex: number
  updatedIndex: number
}

export type TaskCommand =
  | { op: 'propose', title: string, capability: string, payload: string, proposer: string }
  | { op: 'claim', id: string, assignee: string }
  | { op: 'complete' | 'fail', id: string, assignee: string, result: string }
  /** Every promise of one PBFT Ready of the org's replica for federation `genesis`. */
  | { op: 'pbft-promise', genesis: string, record: PromiseRecord }
  /** One committed PBFT batch of the federation, applied to the org's federation state and board. */
  | { op: 'federation-apply', batch: FederationBatch }
  /** A state transfer: another org's federation state at a stable checkpoint this org fell behind. */
  | { op: 'federation-install', install: FederationInstall }

export type TaskErrorCode = 'task-invalid' | 'task-not-found' | 'task-conflict' | 'task-board-full' | 'task-snapshot-malformed'

export class TaskError extends FedmeshError {
  constructor (code: TaskErrorCode, message: string) {
    super(code, message)
    this.name = 'TaskError'
  }
}

/** What applying a command produced; a duplicate gets the first application's outcome (taskId '' for PBFT commands). */
export type TaskOutcome =
  /** results: one per request of a federation batch (what the org's replica replies). */
  | { ok: true, taskId: string, index: number, term: number, results?: Uint8Array[], digest?: Uint8Array }
  | { ok: false, code: TaskErrorCode, message: string }

export const TITLE_LENGTH_MAX = 256
export const ASSIGNEE_LENGTH_MAX = 128
export const JSON_BYTES_MAX = 64 * 1024
export const TASKS_MAX_DEFAULT = 100_000
const CAPABILITY_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/
/** t<log index>, or t<log index>-<position> for the tasks of one federation batch. */
const TASK_ID = /^t[1-9][0-9]{0,15}(-[0-9]{1,5})?$/
const PRINTABLE = /^[^\p{Cc}]+$/u
const SNAPSHOT_VERSION = 3
/** A federated task's payload wraps the proposer's (itself within a PBFT op) with its federation coordinates. */
const STORED_PAYLOAD_BYTES_MAX = JSON_BYTES_MAX + 1024
const FEDERATIONS_MAX = 8

// ---- commands: built and validated from untrusted input before anything is proposed ----

export function proposeCommand (input: { title?: unknown, capability?: unknown, payload?: unknown }, proposer: string): TaskCommand {
  return { op: 'propose', title: text(input.title, 'title', TITLE_LENGTH_MAX), capability: capability(input.capability), payload: json(input.payload ?? null, 'payload'), proposer }
}

export function claimCommand (id: unknown, assignee: unknown): TaskCommand {
  return { op: 'claim', id: taskId(id), assignee: text(assignee, 'assignee', ASSIGNEE_LENGTH_MAX) }
}

export function finishCommand (op: 'complete' | 'fail', id: unknown, assignee: unknown, result: unknown): TaskCommand {
  return { op, id: taskId(id), assignee: text(assignee, 'assignee', ASSIGNEE_LENGTH_MAX), result: json(result ?? null, 'result') }
}

export function encodeTaskCommand (cmd: TaskCommand): Uint8Array {
  if (cmd.op === 'propose') return encodeCanonical(['propose', cmd.title, cmd.capability, cmd.payload, cmd.proposer])
  if (cmd.op === 'claim') return encodeCanonical(['claim', cmd.id, cmd.assignee])
  if (cmd.op === 'pbft-promise') return encodeCanonical(['pbft-promise', ...encodePromiseRecord(cmd.genesis, cmd.record)])
  if (cmd.op === 'federation-apply') return encodeCanonical(['federation-apply', ...encodeFederationBatch(cmd.batch)])
  if (cmd.op === 'federation-install') return encodeCanonical(['federation-install', ...encodeFederationInstall(cmd.install)])
  return encodeCanonical([cmd.op, cmd.id, cmd.assignee, cmd.result])
}

/** Log entries are validated again on apply: the same checks, so every node refuses alike. */
export function decodeTaskCommand (bytes: Uint8Array): TaskCommand {
  const v = decodeCanonical(bytes, () => invalid('undecodable command'))
  if (!Array.isArray(v)) throw invalid('command is not an array')
  if (v[0] === 'propose' && v.length === 5) {
    return { op: 'propose', title: text(v[1], 'title', TITLE_LENGTH_MAX), capability: capability(v[2]), payload: jsonText(v[3], 'payload'), proposer: text(v[4], 'proposer', ASSIGNEE_LENGTH_MAX) }
  }
  if (v[0] === 'claim' && v.length === 3) return claimCommand(v[1], v[2])
  if ((v[0] === 'complete' || v[0] === 'fail') && v.length === 4) {
    return { op: v[0], id: taskId(v[1]), assignee: text(v[2], 'assignee', ASSIGNEE_LENGTH_MAX), result: jsonText(v[3], 'result') }
  }
  if (v[0] === 'pbft-promise') {
    try {
      return { op: 'pbft-promise', ...decodePromiseRecord(v.slice(1)) }
    } catch (err) {
      if (err instanceof PromiseLogError) throw invalid(err.message)
      throw err
    }
  }
  if (v[0] === 'federation-apply' || v[0] === 'federation-install') {
    try {
      if (v[0] === 'federation-install') return { op: 'federation-install', install: decodeFederationInstall(v.slice(1)) }
      return { op: 'federation-apply', batch: decodeFederationBatch(v.slice(1)) }
    } catch (err) {
      if (err instanceof FederationStateError) throw invalid(err.message)
      throw err
    }
  }
  throw invalid('unknown command')
}

// ---- the board ----

interface StoredTask extends Omit<Task, 'payload' | 'result'> { payload: string, result: string | null }

export class TaskBoard {
  readonly #tasks = new Map<string, StoredTask>()
  readonly #tasksMax: number
  #sessions: SessionTable
  #promiseLogs = new PbftPromiseLogs()
  /** Per genesis id, the federation state this org applied (least recently used first). */
  #federations = new Map<string, FederationState>()
  /** `${genesis}/${epoch}.${seq}.${position}` -> the local id of that federated task. */
  readonly #federatedRefs = new Map<string, string>()
  /** Federated tasks that found the board full (not created here; every org still answered alike). */
  #federatedDropped = 0

  constructor (options: { tasksMax?: number, sessionsMax?: number } = {}, snapshot?: Uint8Array) {
    this.#tasksMax = options.tasksMax ?? TASKS_MAX_DEFAULT
    this.#sessions = new SessionTable(options.sessionsMax)
    if (snapshot !== undefined && snapshot.length > 0) this.#restore(snapshot, options.sessionsMax)
  }

  get size (): number { return this.#tasks.size }

  /** Applies a committed entry; undefined for entries that carry no command (leader no-ops). */
  apply (e: Entry): TaskOutcome | undefined {
    if (e.type !== 'normal' || e.data.length === 0) return undefined
    const applied = this.#sessions.applyOnce(e.requestId, () => encodeOutcome(this.#execute(e)))
    return applied.result === undefined ? undefined : decodeOutcome(applied.result)
  }

  get (id: string): Task | undefined {
    const t = this.#tasks.get(id)
    return t === undefined ? undefined : view(t)
  }

  /** The org's PBFT promises for a federation, as applied so far: what its next replica host restores. */
  pbftPromises (genesis: string): PromiseLogState {
    return this.#promiseLogs.state(genesis)
  }

  /** The federation state for a genesis as applied here (undefined before its first batch). */
  federation (genesis: string): FederationState | undefined {
    return this.#federations.get(genesis)
  }

  get federatedDropped (): number { return this.#federatedDropped }

  /** Tasks in creation order, created after afterIndex, optionally of one status. */
  list (filter: { status?: TaskStatus, afterIndex?: number, limit: number }): Task[] {
    const out: Task[] = []
    for (const t of this.#tasks.values()) {
      if (out.length >= filter.limit) break
      if (t.createdIndex <= (filter.afterIndex ?? 0) || (filter.status !== undefined && t.status !== filter.status)) continue
      out.push(view(t))
    }
    return out
  }

  /** Deterministic serialization: tasks in creation order, the session table, then the PBFT promise logs. */
  snapshot (): Uint8Array {
    const rows = [...this.#tasks.values()].map((t) => [
      t.id, t.title, t.capability, t.payload, t.proposer, TASK_STATUSES.indexOf(t.status), t.assignee, t.result, t.createdIndex, t.updatedIndex
    ])
    return encodeCanonical([SNAPSHOT_VERSION, rows, this.#sessions.encode(), this.#promiseLogs.encode(), [...this.#federations].map(([g, f]) => [g, f.encode()])])
  }

  #execute (e: Entry): TaskOutcome {
    let cmd: TaskCommand
    try {
      cmd = decodeTaskCommand(e.data)
    } catch (err) {
      return refusal(err)
    }
    if (cmd.op === 'pbft-promise') {
      try {
        this.#promiseLogs.append(cmd.genesis, cmd.record)
      } catch (err) {
        if (err instanceof PromiseLogError) return { ok: false, code: 'task-board-full', message: err.message }
        throw err
      }
      return { ok: true, taskId: '', index: e.index, term: e.term }
    }
    if (cmd.op === 'federation-apply') return this.#applyFederationBatch(cmd.batch, e)
    if (cmd.op === 'federation-install') return this.#installFederationState(cmd.install, e)
    if (cmd.op === 'propose') {
      if (!this.#hasRoom()) return { ok: false, code: 'task-board-full', message: `the board holds ${this.#tasksMax} unfinished tasks` }
      const id = `t${e.index}`
      assert.ok(!this.#tasks.has(id), `task ${id} applied twice`)
      this.#tasks.set(id, {
        id, title: cmd.title, capability: cmd.capability, payload: cmd.payload, proposer: cmd.proposer,
        status: 'open', assignee: null, result: null, createdIndex: e.index, updatedIndex: e.index
      })
      return { ok: true, taskId: id, index: e.index, term: e.term }
    }
    const task = this.#tasks.get(cmd.id)
    if (task === undefined) return { ok: false, code: 'task-not-found', message: `no task ${cmd.id}` }
    // Every org holds a copy of a federated task: its claim and result go through the federation.
    if (isFederated(task.id)) return conflict(`task ${task.id} is a federation task: claim and finish it through the federation`)
    if (cmd.op === 'claim') {
      if (task.status !== 'open') return conflict(`task ${task.id} is ${task.status}, not open`)
      task.status = 'claimed'
      task.assignee = cmd.assignee
    } else {
      if (task.status !== 'claimed') return conflict(`task ${task.id} is ${task.status}, not claimed`)
      if (task.assignee !== cmd.assignee) return conflict(`task ${task.id} is claimed by ${String(task.assignee)}`)
      task.status = cmd.op === 'complete' ? 'done' : 'failed'
      task.result = cmd.result
    }
    task.updatedIndex = e.index
    return { ok: true, taskId: task.id, index: e.index, term: e.term }
  }

  #applyFederationBatch (batch: FederationBatch, e: Entry): TaskOutcome {
    const genesis = batch.config.genesis
    const state = this.#federations.get(genesis) ?? new FederationState(batch.config)
    const epoch = state.config.epoch
    let applied
    try {
      applied = state.apply(batch)
    } catch (err) {
      if (err instanceof FederationStateError) return { ok: false, code: 'task-conflict', message: err.message }
      throw err
    }
    this.#federations.delete(genesis)
    this.#federations.set(genesis, state)
    if (this.#federations.size > FEDERATIONS_MAX) this.#federations.delete(this.#federations.keys().next().value!)
    for (const { position, opened } of applied.tasks) {
      if (!this.#hasRoom()) {
        this.#federatedDropped++
        continue
      }
      const id = `t${e.index}-${position}`
      const { title, capability, payload, target } = opened.op
      const federation = { id: genesis, epoch, seq: batch.seq, position, org: opened.org, root: opened.root, proposer: opened.node, target }
      this.#tasks.set(id, {
        id, title, capability, payload: `{"federation":${JSON.stringify(federation)},"payload":${payload}}`, proposer: opened.node,
        status: 'open', assignee: null, result: null, createdIndex: e.index, updatedIndex: e.index
      })
      this.#federatedRefs.set(`${genesis}/${epoch}.${batch.seq}.${position}`, id)
    }
    for (const update of applied.updates) {
      // An org that joined later, or evicted the task, has no copy: the others still agree on it.
      const task = this.#tasks.get(this.#federatedRefs.get(`${genesis}/${update.ref}`) ?? '')
      if (task === undefined) continue
      task.status = update.status
      task.assignee = update.node
      if (update.result !== undefined) task.result = update.result
      task.updatedIndex = e.index
    }
    return { ok: true, taskId: '', index: e.index, term: e.term, results: applied.results, ...(applied.digest !== undefined ? { digest: applied.digest } : {}) }
  }

  #installFederationState (install: FederationInstall, e: Entry): TaskOutcome {
    const state = this.#federations.get(install.config.genesis) ?? new FederationState(install.config)
    try {
      state.installCore(install.instance, install.core)
    } catch (err) {
      if (err instanceof FederationStateError) return { ok: false, code: 'task-invalid', message: err.message }
      throw err
    }
    this.#federations.set(install.config.genesis, state)
    if (this.#federations.size > FEDERATIONS_MAX) this.#federations.delete(this.#federations.keys().next().value!)
    return { ok: true, taskId: '', index: e.index, term: e.term }
  }

  #hasRoom (): boolean {
    return this.#tasks.size < this.#tasksMax || this.#evictOldestFinished()
  }

  #evictOldestFinished (): boolean {
    for (const [id, t] of this.#tasks) {
      if (t.status === 'done' || t.status === 'failed') {
        this.#tasks.delete(id)
        if (isFederated(id)) this.#federatedRefs.delete(federatedRef(t.payload))
        return true
      }
    }
    return false
  }

  #restore (bytes: Uint8Array, sessionsMax: number | undefined): void {
    try {
      const v = decodeCanonical(bytes)
      // Version 1 boards predate the promise logs.
      if (!Array.isArray(v) || !(v[0] === 1 ? v.length === 3 : v[0] === 2 ? v.length === 4 : v[0] === SNAPSHOT_VERSION && v.length === 5) || !Array.isArray(v[1]) || !(v[2] instanceof Uint8Array)) throw new Error('bad shape')
      for (const row of v[1] as unknown[][]) {
        const [id, title, cap, payload, proposer, status, assignee, result, createdIndex, updatedIndex] = row
        const t: StoredTask = {
          id: taskId(id), title: text(title, 'title', TITLE_LENGTH_MAX), capability: capability(cap), payload: jsonText(payload, 'payload', STORED_PAYLOAD_BYTES_MAX),
          proposer: text(proposer, 'proposer', ASSIGNEE_LENGTH_MAX), status: TASK_STATUSES[status as number] ?? fail('status'),
          assignee: assignee === null ? null : text(assignee, 'assignee', ASSIGNEE_LENGTH_MAX),
          result: result === null ? null : jsonText(result, 'result'),
          createdIndex: index(createdIndex), updatedIndex: index(updatedIndex)
        }
        this.#tasks.set(t.id, t)
        if (isFederated(t.id)) this.#federatedRefs.set(federatedRef(t.payload), t.id)
      }
      this.#sessions = SessionTable.decode(v[2], sessionsMax)
      if (v[0] !== 1) this.#promiseLogs = PbftPromiseLogs.decode(v[3])
      if (v[0] === SNAPSHOT_VERSION) {
        if (!Array.isArray(v[4]) || v[4].length > FEDERATIONS_MAX) throw new Error('bad federations')
        for (const [g, f] of v[4] as unknown[][]) this.#federations.set(g as string, FederationState.decode(f))
      }
    } catch (err) {
      throw new TaskError('task-snapshot-malformed', `task board snapshot: ${(err as Error).message}`)
    }
  }
}

/** Ids of federated tasks carry their batch position: t<index>-<position>. */
function isFederated (id: string): boolean {
  return id.includes('-')
}

/** A federated task's key in the ref index, from its stored payload. */
function federatedRef (payload: string): string {
  const { id, epoch, seq, position } = (JSON.parse(payload) as { federation: { id: string, epoch: number, seq: number, position: number } }).federation
  return `${id}/${epoch}.${seq}.${position}`
}

/** HTTP status for a task error code. */
export function taskErrorStatus (code: string): number {
  return code === 'task-not-found' ? 404 : code === 'task-conflict' ? 409 : code === 'task-board-full' ? 503 : 400
}

function view (t: StoredTask): Task {
  return { ...t, payload: JSON.parse(t.payload), result: t.result === null ? null : JSON.parse(t.result) }
}

function encodeOutcome (o: TaskOutcome): Uint8Array {
  if (!o.ok) return encodeCanonical([false, o.code, o.message])
  return encodeCanonical(o.results === undefined ? [true, o.taskId, o.index, o.term] : [true, o.taskId, o.index, o.term, o.results, o.digest ?? null])
}

function decodeOutcome (bytes: Uint8Array): TaskOutcome {
  const v = decodeCanonical(bytes) as [true, string, number, number, Uint8Array[]?, (Uint8Array | null)?] | [false, TaskErrorCode, string]
  if (!v[0]) return { ok: false, code: v[1], message: v[2] }
  return { ok: true, taskId: v[1], index: v[2], term: v[3], ...(v[4] !== undefined ? { results: v[4] } : {}), ...(v[5] instanceof Uint8Array ? { digest: v[5] } : {}) }
}

function refusal (err: unknown): TaskOutcome {
  if (err instanceof TaskError) return { ok: false, code: err.code as TaskErrorCode, message: err.message }
  throw err
}

function conflict (message: string): TaskOutcome {
  return { ok: false, code: 'task-conflict', message }
}

function invalid (message: string): TaskError {
  return new TaskError('task-invalid', message)
}

function fail (what: string): never {
  throw invalid(`bad ${what}`)
}

function text (x: unknown, what: string, lengthMax: number): string {
  if (typeof x !== 'string' || x.length === 0 || x.length > lengthMax || !PRINTABLE.test(x)) {
    throw invalid(`${what} must be a string of 1-${lengthMax} printable characters`)
  }
  return x
}

function capability (x: unknown): string {
  if (typeof x !== 'string' || !CAPABILITY_NAME.test(x)) throw invalid(`capability must match ${CAPABILITY_NAME.source}`)
  return x
}

function taskId (x: unknown): string {
  if (typeof x !== 'string' || !TASK_ID.test(x)) throw invalid(`task id must match ${TASK_ID.source}`)
  return x
}

function index (x: unknown): number {
  if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 1) throw invalid('bad index')
  return x
}

/** A JSON value as its text, bounded. */
function json (value: unknown, what: string): string {
  let t: string | undefined
  try {
    t = JSON.stringify(value)
  } catch {
    throw invalid(`${what} must be JSON`)
  }
  if (t === undefined) throw invalid(`${what} must be JSON`)
  if (Buffer.byteLength(t) > JSON_BYTES_MAX) throw invalid(`${what} exceeds ${JSON_BYTES_MAX} bytes of JSON`)
  return t
}

function jsonText (x: unknown, what: string, bytesMax = JSON_BYTES_MAX): string {
  if (typeof x !== 'string' || Buffer.byteLength(x) > bytesMax) throw invalid(`${what} must be JSON text of at most ${bytesMax} bytes`)
  try {
    JSON.parse(x)
  } catch {
    throw invalid(`${what} is not JSON`)
  }
  return x
}

import assert from 'node:assert/strict'
import type { Entry } from '../../consensus/types.js'
import {
  ASSIGNEE_LENGTH_MAX, JSON_BYTES_MAX, TITLE_LENGTH_MAX, capability, invalid, jsonText, taskId, text, type TaskCommand, type TaskOutcome
} from './task-commands.js'

// The organisation's tasks, as its state machine (org-state-machine.ts) applies the task commands of
// the Raft log to them. Apply is deterministic (same commands in the same order give the same board
// on every node) and every command is checked whole before anything changes, so a refused command
// leaves no trace but its result. Task ids are derived from the log index that created them:
// `t<index>`. A federation batch adds every member org's copy of the tasks it opened (openFederated)
// and carries their claims and results into those copies (updateFederated).

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

/** Where a federated task stands in its federation (genesis id, epoch, seq, position), who proposed it, and the org it targets. */
export interface FederationCoordinates { id: string, epoch: number, seq: number, position: number, org: string, root: string, proposer: string, target: string | null }
/** A task a federation batch opened, as this org's board copies it. */
export interface FederatedTaskCopy { title: string, capability: string, payload: string, federation: FederationCoordinates }
/** A claim or result for a federated task (ref: epoch.seq.position), applied to this org's copy. */
export interface FederatedUpdate { ref: string, status: 'claimed' | 'done' | 'failed', node: string, result?: string }

/** How many tasks the board holds by status, the org's own and federated copies apart, and the newest of each status (newest first). */
export interface BoardSummary {
  counts: Record<'org' | 'federated', Record<TaskStatus, number>>
  recent: Record<TaskStatus, Task[]>
}

export const TASKS_MAX_DEFAULT = 100_000
/** A federated task's payload wraps the proposer's (itself within a PBFT op) with its federation coordinates. */
const STORED_PAYLOAD_BYTES_MAX = JSON_BYTES_MAX + 1024

interface StoredTask extends Omit<Task, 'payload' | 'result'> { payload: string, result: string | null }

export class TaskBoard {
  readonly #tasks = new Map<string, StoredTask>()
  readonly #tasksMax: number
  /** `${genesis}/${epoch}.${seq}.${position}` -> the local id of that federated task. */
  readonly #federatedRefs = new Map<string, string>()
  /** Federated tasks that found the board full (not created here; every org still answered alike). */
  #federatedDropped = 0

  constructor (options: { tasksMax?: number } = {}) {
    this.#tasksMax = options.tasksMax ?? TASKS_MAX_DEFAULT
  }

  get size (): number { return this.#tasks.size }

  get federatedDropped (): number { return this.#federatedDropped }

  get (id: string): Task | undefined {
    const t = this.#tasks.get(id)
    return t === undefined ? undefined : view(t)
  }

  summary (recentMax: number): BoardSummary {
    const zero = (): Record<TaskStatus, number> => ({ open: 0, claimed: 0, done: 0, failed: 0 })
    const summary: BoardSummary = { counts: { org: zero(), federated: zero() }, recent: { open: [], claimed: [], done: [], failed: [] } }
    const tasks = [...this.#tasks.values()]
    for (let i = tasks.length - 1; i >= 0; i--) {
      const t = tasks[i]!
      summary.counts[isFederated(t.id) ? 'federated' : 'org'][t.status]++
      if (summary.recent[t.status].length < recentMax) summary.recent[t.status].push(view(t))
    }
    return summary
  }

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

  /** Applies a (validated) task command committed at entry e. */
  apply (cmd: TaskCommand, e: Pick<Entry, 'index' | 'term'>): TaskOutcome {
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

  /** Adds this org's copy of a federated task, id t<index>-<position>; counted and skipped when the board is full of unfinished tasks. */
  openFederated (task: FederatedTaskCopy, index: number): void {
    if (!this.#hasRoom()) {
      this.#federatedDropped++
      return
    }
    // Rebuilt field by field: the stored payload's key order is the board's, whatever the caller's.
    const { id: genesis, epoch, seq, position, org, root, proposer, target } = task.federation
    const federation: FederationCoordinates = { id: genesis, epoch, seq, position, org, root, proposer, target }
    const id = `t${index}-${position}`
    this.#tasks.set(id, {
      id, title: task.title, capability: task.capability, payload: `{"federation":${JSON.stringify(federation)},"payload":${task.payload}}`, proposer,
      status: 'open', assignee: null, result: null, createdIndex: index, updatedIndex: index
    })
    this.#federatedRefs.set(refKey(federation), id)
  }

  updateFederated (genesis: string, update: FederatedUpdate, index: number): void {
    // An org that joined later, or evicted the task, has no copy: the others still agree on it.
    const task = this.#tasks.get(this.#federatedRefs.get(`${genesis}/${update.ref}`) ?? '')
    if (task === undefined) return
    task.status = update.status
    task.assignee = update.node
    if (update.result !== undefined) task.result = update.result
    task.updatedIndex = index
  }

  /** Deterministic: the tasks in creation order. */
  encode (): unknown[] {
    return [...this.#tasks.values()].map((t) => [
      t.id, t.title, t.capability, t.payload, t.proposer, TASK_STATUSES.indexOf(t.status), t.assignee, t.result, t.createdIndex, t.updatedIndex
    ])
  }

  /** Throws TaskError on a malformed row. */
  static decode (rows: unknown[], options: { tasksMax?: number } = {}): TaskBoard {
    const board = new TaskBoard(options)
    for (const row of rows as unknown[][]) {
      const [id, title, cap, payload, proposer, status, assignee, result, createdIndex, updatedIndex] = row
      const t: StoredTask = {
        id: taskId(id), title: text(title, 'title', TITLE_LENGTH_MAX), capability: capability(cap), payload: jsonText(payload, 'payload', STORED_PAYLOAD_BYTES_MAX),
        proposer: text(proposer, 'proposer', ASSIGNEE_LENGTH_MAX), status: TASK_STATUSES[status as number] ?? fail('status'),
        assignee: assignee === null ? null : text(assignee, 'assignee', ASSIGNEE_LENGTH_MAX),
        result: result === null ? null : jsonText(result, 'result'),
        createdIndex: index(createdIndex), updatedIndex: index(updatedIndex)
      }
      board.#tasks.set(t.id, t)
      if (isFederated(t.id)) board.#federatedRefs.set(federatedRef(t.payload), t.id)
    }
    return board
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
}

/** Ids of federated tasks carry their batch position: t<index>-<position>. */
function isFederated (id: string): boolean {
  return id.includes('-')
}

function refKey (f: Pick<FederationCoordinates, 'id' | 'epoch' | 'seq' | 'position'>): string {
  return `${f.id}/${f.epoch}.${f.seq}.${f.position}`
}

/** A federated task's key in the ref index, from its stored payload. */
function federatedRef (payload: string): string {
  return refKey((JSON.parse(payload) as { federation: FederationCoordinates }).federation)
}

/** HTTP status for a task error code. */
export function taskErrorStatus (code: string): number {
  return code === 'task-not-found' ? 404 : code === 'task-conflict' ? 409 : code === 'task-board-full' ? 503 : 400
}

function view (t: StoredTask): Task {
  return { ...t, payload: JSON.parse(t.payload), result: t.result === null ? null : JSON.parse(t.result) }
}

function conflict (message: string): TaskOutcome {
  return { ok: false, code: 'task-conflict', message }
}

function fail (what: string): never {
  throw invalid(`bad ${what}`)
}

function index (x: unknown): number {
  if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 1) throw invalid('bad index')
  return x
}

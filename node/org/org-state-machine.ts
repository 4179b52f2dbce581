import { SessionTable } from '../../consensus/raft/dedup.js'
import type { StateMachine } from '../../consensus/raft/driver.js'
import type { ConfChange } from '../../consensus/raft/conf-change.js'
import type { Entry } from '../../consensus/types.js'
import { PbftPromiseLogs, PromiseLogError, decodePromiseRecord, encodePromiseRecord, type PromiseLogState, type PromiseRecord } from '../../consensus/pbft/promise-log.js'
import { decodeCanonical, encodeCanonical } from '../../base/codec.js'
import { FederationStateError } from '../federation/config.js'
import { type FederationBatch, type FederationInstall, FederationState, decodeFederationBatch, decodeFederationInstall, encodeFederationBatch, encodeFederationInstall } from '../federation/state.js'
import { TaskBoard } from './task-board.js'
import { TaskError, decodeTaskCommand, encodeTaskCommand, invalid, type TaskCommand, type TaskErrorCode, type TaskOutcome } from './task-commands.js'

// The organisation's replicated state: the one state machine its Raft log drives. It decodes each
// committed command and hands it to the part it is about: task commands to the board, an org
// replica's PBFT promises to the promise logs (so whichever member hosts the replica next resumes
// it), committed federation batches and state transfers to the per-genesis federation states (which
// open and update federated tasks on the board). Retried proposals carry the same request id and
// apply once: the session table, like everything else here, is part of the one snapshot.
// Members removed by an operator or on leaving are remembered with the incarnation they had
// (the removal's context): the leader re-adds such a member only once it restarted (a higher
// incarnation), never the same running process.

export type OrgCommand =
  | TaskCommand
  /** Every promise of one PBFT Ready of the org's replica for federation `genesis`. */
  | { op: 'pbft-promise', genesis: string, record: PromiseRecord }
  /** One committed PBFT batch of the federation, applied to the org's federation state and board. */
  | { op: 'federation-apply', batch: FederationBatch }
  /** A state transfer: another org's federation state at a stable checkpoint this org fell behind. */
  | { op: 'federation-install', install: FederationInstall }

/** Version 1 snapshots predate the promise logs, version 2 the federation states, 3 the removed members; all still restore. */
const SNAPSHOT_VERSION = 4
const FEDERATIONS_MAX = 8
const REMOVED_MAX = 4096
/** The removal context of a member that must never return under its key (a forced recovery removed it). */
export const REMOVED_FOR_GOOD = Number.MAX_SAFE_INTEGER

export function removalContext (incarnation: number): Uint8Array {
  return encodeCanonical(incarnation)
}

export function encodeOrgCommand (cmd: OrgCommand): Uint8Array {
  if (cmd.op === 'pbft-promise') return encodeCanonical(['pbft-promise', ...encodePromiseRecord(cmd.genesis, cmd.record)])
  if (cmd.op === 'federation-apply') return encodeCanonical(['federation-apply', ...encodeFederationBatch(cmd.batch)])
  if (cmd.op === 'federation-install') return encodeCanonical(['federation-install', ...encodeFederationInstall(cmd.install)])
  return encodeCanonical(encodeTaskCommand(cmd))
}

/** Log entries are validated again on apply; a malformed command of any kind is task-invalid. */
export function decodeOrgCommand (bytes: Uint8Array): OrgCommand {
  const v = decodeCanonical(bytes, () => invalid('undecodable command'))
  if (!Array.isArray(v)) throw invalid('command is not an array')
  if (v[0] === 'pbft-promise') return { op: 'pbft-promise', ...invalidOn(PromiseLogError, () => decodePromiseRecord(v.slice(1))) }
  if (v[0] === 'federation-apply') return { op: 'federation-apply', batch: invalidOn(FederationStateError, () => decodeFederationBatch(v.slice(1))) }
  if (v[0] === 'federation-install') return { op: 'federation-install', install: invalidOn(FederationStateError, () => decodeFederationInstall(v.slice(1))) }
  return decodeTaskCommand(v)
}

export class OrgStateMachine implements StateMachine<TaskOutcome> {
  #board: TaskBoard
  #sessions: SessionTable
  #promiseLogs = new PbftPromiseLogs()
  /** Per genesis id, the federation state this org applied (least recently used first). */
  readonly #federations = new Map<string, FederationState>()
  /** Removed member key → the incarnation it was removed at (oldest removal first). */
  readonly #removed = new Map<string, number>()

  constructor (options: { tasksMax?: number, sessionsMax?: number } = {}, snapshot?: Uint8Array) {
    this.#board = new TaskBoard(options)
    this.#sessions = new SessionTable(options.sessionsMax)
    if (snapshot !== undefined && snapshot.length > 0) this.#restore(snapshot, options)
  }

  /** The org's tasks as applied so far: to read (writes go through the log). */
  get board (): Pick<TaskBoard, 'size' | 'federatedDropped' | 'get' | 'list' | 'summary'> { return this.#board }

  /** Applies a committed entry; undefined for entries that carry no command (leader no-ops). */
  apply (e: Entry): TaskOutcome | undefined {
    if (e.type !== 'normal' || e.data.length === 0) return undefined
    const applied = this.#sessions.applyOnce(e.requestId, () => encodeOutcome(this.#execute(e)))
    return applied.result === undefined ? undefined : decodeOutcome(applied.result)
  }

  /** Records a removal that carries an incarnation (an operator's, a leave, a forced recovery). */
  applyConfChange (cc: ConfChange): void {
    if (cc.type !== 'remove' || cc.context === undefined) return
    let incarnation: unknown
    try {
      incarnation = decodeCanonical(cc.context)
    } catch {
      return // another kind of context: not a removal to remember
    }
    if (!Number.isSafeInteger(incarnation) || (incarnation as number) < 0) return
    this.#removed.delete(cc.node)
    this.#removed.set(cc.node, incarnation as number)
    if (this.#removed.size > REMOVED_MAX) this.#removed.delete(this.#removed.keys().next().value!)
  }

  /** Whether a member at this incarnation was removed (and so must not be added back). */
  isRemoved (key: string, incarnation: number): boolean {
    const removedAt = this.#removed.get(key)
    return removedAt !== undefined && incarnation <= removedAt
  }

  /** The org's PBFT promises for a federation, as applied so far: what its next replica host restores. */
  pbftPromises (genesis: string): PromiseLogState {
    return this.#promiseLogs.state(genesis)
  }

  /** The federation state for a genesis as applied here (undefined before its first batch). */
  federation (genesis: string): FederationState | undefined {
    return this.#federations.get(genesis)
  }

  /** Deterministic: the board's tasks, the session table, the PBFT promise logs, then the federation states. */
  snapshot (): Uint8Array {
    return encodeCanonical([SNAPSHOT_VERSION, this.#board.encode(), this.#sessions.encode(), this.#promiseLogs.encode(), [...this.#federations].map(([g, f]) => [g, f.encode()]), [...this.#removed]])
  }

  #execute (e: Entry): TaskOutcome {
    let cmd: OrgCommand
    try {
      cmd = decodeOrgCommand(e.data)
    } catch (err) {
      if (err instanceof TaskError) return { ok: false, code: err.code as TaskErrorCode, message: err.message }
      throw err
    }
    if (cmd.op === 'pbft-promise') {
      try {
        this.#promiseLogs.append(cmd.genesis, cmd.record)
      } catch (err) {
        if (err instanceof PromiseLogError) return { ok: false, code: err.code === 'pbft-promise-superseded' ? 'task-conflict' : 'task-board-full', message: err.message }
        throw err
      }
      return { ok: true, taskId: '', index: e.index, term: e.term }
    }
    if (cmd.op === 'federation-apply') return this.#applyFederationBatch(cmd.batch, e)
    if (cmd.op === 'federation-install') return this.#installFederationState(cmd.install, e)
    return this.#board.apply(cmd, e)
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
    this.#keepFederation(genesis, state)
    for (const { position, opened } of applied.tasks) {
      const { title, capability, payload, target } = opened.op
      this.#board.openFederated({ title, capability, payload, federation: { id: genesis, epoch, seq: batch.seq, position, org: opened.org, root: opened.root, proposer: opened.node, target } }, e.index)
    }
    for (const update of applied.updates) this.#board.updateFederated(genesis, update, e.index)
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
    this.#keepFederation(install.config.genesis, state)
    return { ok: true, taskId: '', index: e.index, term: e.term }
  }

  #keepFederation (genesis: string, state: FederationState): void {
    this.#federations.set(genesis, state)
    if (this.#federations.size > FEDERATIONS_MAX) this.#federations.delete(this.#federations.keys().next().value!)
  }

  #restore (bytes: Uint8Array, options: { tasksMax?: number, sessionsMax?: number }): void {
    try {
      const v = decodeCanonical(bytes)
      const lengths: Record<number, number> = { 1: 3, 2: 4, 3: 5, 4: 6 }
      if (!Array.isArray(v) || lengths[v[0] as number] !== v.length || !Array.isArray(v[1]) || !(v[2] instanceof Uint8Array)) throw new Error('bad shape')
      this.#board = TaskBoard.decode(v[1], options)
      this.#sessions = SessionTable.decode(v[2], options.sessionsMax)
      if (v[0] !== 1) this.#promiseLogs = PbftPromiseLogs.decode(v[3])
      if (v[0] >= 3) {
        if (!Array.isArray(v[4]) || v[4].length > FEDERATIONS_MAX) throw new Error('bad federations')
        for (const [g, f] of v[4] as unknown[][]) this.#federations.set(g as string, FederationState.decode(f))
      }
      if (v[0] === SNAPSHOT_VERSION) {
        if (!Array.isArray(v[5]) || v[5].length > REMOVED_MAX) throw new Error('bad removed members')
        for (const r of v[5] as unknown[]) {
          if (!Array.isArray(r) || typeof r[0] !== 'string' || !Number.isSafeInteger(r[1])) throw new Error('bad removed member')
          this.#removed.set(r[0], r[1] as number)
        }
      }
    } catch (err) {
      throw new TaskError('task-snapshot-malformed', `task board snapshot: ${(err as Error).message}`)
    }
  }
}

/** Decodes a part of a command with its own decoder, refusing what that decoder refuses as task-invalid. */
function invalidOn<T> (refusal: abstract new (...args: never[]) => Error, decode: () => T): T {
  try {
    return decode()
  } catch (err) {
    if (err instanceof refusal) throw invalid(err.message)
    throw err
  }
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

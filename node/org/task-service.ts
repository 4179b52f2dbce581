import assert from 'node:assert/strict'
import type { Registry } from 'prom-client'
import type { RequestId } from '../../consensus/types.js'
import type { Clock, Rng } from '../../base/clock.js'
import { FedmeshError } from '../../base/errors.js'
import { toHex } from '../../base/bytes.js'
import type { DropReason } from '../runtime/message-channel.js'
import type { FederationBatch, FederationInstall, FederationState } from '../federation/state.js'
import type { Logger } from '../../base/log.js'
import { collectedGauge, mirroredCounter } from '../runtime/metrics.js'
import type { PromiseLogState, PromiseRecord } from '../../consensus/pbft/promise-log.js'
import { type LeaveResult, RaftDriver, type RaftDriverInit, type RaftMembers, type RaftNodeStatus } from '../../consensus/raft/driver.js'
import type { ForcedGroup } from '../../consensus/raft/force-new-group.js'
import type { Storage } from '../../base/storage.js'
import { encodeOrgCommand, OrgStateMachine, REMOVED_FOR_GOOD, removalContext, type OrgCommand } from './org-state-machine.js'
import type { BoardSummary, Task, TaskStatus } from './task-board.js'
import { claimCommand, finishCommand, proposeCommand, TaskError, type TaskCommand, type TaskOutcome } from './task-commands.js'
import type { Transport } from '../../base/transport.js'

// The organisation's task board as the node serves it: one Raft group `org/<org>` replicating an
// OrgStateMachine (the board, the org's PBFT promises and federation states). Writes resolve once
// committed and applied here; reads are local (possibly a little stale on a follower) unless
// `linearizable`, which waits for a ReadIndex barrier first.

export type RaftOptions = Pick<RaftDriverInit<TaskOutcome>, 'tickMs' | 'electionTicks' | 'heartbeatTicks' | 'votersMax' | 'snapshotEntries' | 'compactionRetainEntries' | 'requestTimeoutMs' | 'deadVoterRemoveAfterMs'> & {
  tasksMax?: number
}

export interface OrgMember { key: string, incarnation: number }

export interface TaskServiceInit {
  org: string
  selfKey: string
  /** This node created the organisation: it founds the group as its sole voter. */
  founder: boolean
  storage: Storage
  transport: Transport & { messageDrops?: () => Array<{ channel: string, reason: DropReason, count: number }> }
  clock: Clock
  rng: Rng
  logger: Logger
  /** The other verified, alive members of the org. */
  orgMembers: () => OrgMember[]
  /** The incarnation a member (or this node) announces, if known: recorded with its removal. */
  incarnationOf: (key: string) => number | undefined
  registry?: Registry
  options?: RaftOptions
  /** Disaster recovery: this node becomes the group's only voter from its own log (once; audit it). */
  forceNewGroup?: boolean
}

export interface NewTask {
  title: string
  capability: string
  payload?: unknown
  /** Federation scope only: the org (name or root key) that alone may claim it. */
  target?: string
}
export interface TaskReceipt { taskId: string, index: number, term: number }
export interface WriteOptions {
  /** Idempotency key: a retry with the same id (on any node) applies once and gets the first receipt. */
  requestId?: string
  timeoutMs?: number
}
export interface ReadOptions { linearizable?: boolean, timeoutMs?: number }

export const LIST_LIMIT_MAX = 1000
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/

export class TaskService {
  readonly #driver: RaftDriver<TaskOutcome>
  readonly #selfKey: string
  /** Random per start, so request ids from a restarted node never collide with its earlier ones. */
  readonly #clientPrefix: string
  #requests = 0

  private constructor (driver: RaftDriver<TaskOutcome>, init: TaskServiceInit) {
    this.#driver = driver
    this.#selfKey = init.selfKey
    this.#clientPrefix = `${init.selfKey.slice(0, 16)}.${toHex(init.rng.bytes(8))}`
    if (init.registry !== undefined) this.#registerMetrics(init.registry, init.transport)
  }

  static async start (init: TaskServiceInit): Promise<TaskService> {
    const { tasksMax, ...raft } = init.options ?? {}
    let machine: OrgStateMachine | undefined
    // A member removed at its current incarnation stays out (not re-added, its Raft traffic refused).
    const members = (): OrgMember[] => init.orgMembers().filter((m) => machine?.isRemoved(m.key, m.incarnation) !== true)
    const driver = await RaftDriver.start<TaskOutcome>({
      ...raft,
      removalContext: (key) => removalContext(init.incarnationOf(key) ?? 0),
      ...(init.forceNewGroup === true ? { forceNewGroup: { removedContext: removalContext(REMOVED_FOR_GOOD) } } : {}),
      group: `org/${init.org}`,
      selfKey: init.selfKey,
      founder: init.founder,
      storage: init.storage,
      transport: init.transport,
      clock: init.clock,
      rng: init.rng,
      logger: init.logger,
      orgMembers: () => members().map((m) => m.key),
      restore: (snapshot) => (machine = new OrgStateMachine(tasksMax === undefined ? {} : { tasksMax }, snapshot))
    })
    return new TaskService(driver, init)
  }

  async propose (task: NewTask, options: WriteOptions = {}): Promise<TaskReceipt> {
    return await this.#write(proposeCommand(task, this.#selfKey), options)
  }

  async claim (id: string, options: WriteOptions & { assignee?: string } = {}): Promise<TaskReceipt> {
    return await this.#write(claimCommand(id, options.assignee ?? this.#selfKey), options)
  }

  async complete (id: string, result: unknown, options: WriteOptions & { assignee?: string } = {}): Promise<TaskReceipt> {
    return await this.#write(finishCommand('complete', id, options.assignee ?? this.#selfKey, result), options)
  }

  async fail (id: string, result: unknown, options: WriteOptions & { assignee?: string } = {}): Promise<TaskReceipt> {
    return await this.#write(finishCommand('fail', id, options.assignee ?? this.#selfKey, result), options)
  }

  async get (id: string, options: ReadOptions = {}): Promise<Task | undefined> {
    if (options.linearizable === true) await this.#driver.readBarrier(options)
    return this.#machine.board.get(id)
  }

  async list (filter: { status?: TaskStatus, afterIndex?: number, limit?: number } = {}, options: ReadOptions = {}): Promise<Task[]> {
    if (options.linearizable === true) await this.#driver.readBarrier(options)
    return this.#machine.board.list({ ...filter, limit: Math.min(filter.limit ?? 100, LIST_LIMIT_MAX) })
  }

  /** The board at a glance, as applied on this node (the console's task board). */
  summary (recentMax: number): BoardSummary {
    return this.#machine.board.summary(Math.min(recentMax, LIST_LIMIT_MAX))
  }

  /**
   * Commits one Ready's PBFT promises into the org's log (all org members hold them); resolves once
   * applied here. A retry with the same request id applies once.
   */
  async commitPbftPromises (genesis: string, record: PromiseRecord, requestId: RequestId, options: { timeoutMs?: number } = {}): Promise<void> {
    const committed = await this.#driver.propose(encodeOrgCommand({ op: 'pbft-promise', genesis, record }), requestId, options)
    const outcome = committed.result
    if (outcome === undefined) throw new FedmeshError('task-request-expired', 'the request id is older than its session: retried too late')
    if (!outcome.ok) throw new TaskError(outcome.code, outcome.message)
  }

  /**
   * Applies one committed PBFT batch to the org's federation state and board; resolves with the
   * org's result for each request. A batch applied before (a new host replaying it) returns the
   * same results.
   */
  async commitFederationBatch (batch: FederationBatch, options: { timeoutMs?: number } = {}): Promise<{ results: Uint8Array[], digest?: Uint8Array }> {
    const outcome = await this.#commitFederation({ op: 'federation-apply', batch }, options)
    assert.ok(outcome.results !== undefined && outcome.results.length === batch.requests.length, 'one result per federation request')
    return { results: outcome.results, ...(outcome.digest !== undefined ? { digest: outcome.digest } : {}) }
  }

  /** Installs another org's federation state (a state transfer, its digest already checked). */
  async installFederationState (install: FederationInstall, options: { timeoutMs?: number } = {}): Promise<void> {
    await this.#commitFederation({ op: 'federation-install', install }, options)
  }

  async #commitFederation (cmd: OrgCommand, options: { timeoutMs?: number }): Promise<Extract<TaskOutcome, { ok: true }>> {
    const committed = await this.#driver.propose(encodeOrgCommand(cmd), this.#requestId(undefined), options)
    const outcome = committed.result
    if (outcome === undefined) throw new FedmeshError('task-request-expired', 'the request id is older than its session: retried too late')
    if (!outcome.ok) throw new TaskError(outcome.code, outcome.message)
    return outcome
  }

  /** The federation state as applied on this node (possibly a little stale on a follower). */
  federationState (genesis: string): FederationState | undefined {
    return this.#machine.federation(genesis)
  }

  /** The org's PBFT promises for a federation, after every write committed before the call (ReadIndex). */
  async pbftPromises (genesis: string, options: { timeoutMs?: number } = {}): Promise<PromiseLogState> {
    await this.#driver.readBarrier(options)
    return this.#machine.pbftPromises(genesis)
  }

  raftStatus (): RaftNodeStatus {
    return this.#driver.status()
  }

  /** Removes a member from the org's Raft group (through the leader, from any member). */
  async removeMember (key: string, options: { timeoutMs?: number } = {}): Promise<void> {
    await this.#driver.removeMember(key, options)
  }

  /** The group's members as its leader sees them (asked of the leader). */
  async members (): Promise<RaftMembers> {
    return await this.#driver.members()
  }

  /** Has the leader remove this node from the group, when the group keeps a healthy quorum without it. */
  async leave (): Promise<LeaveResult> {
    return await this.#driver.leave()
  }

  /** What a forced recovery did at this start, if one ran. */
  get forced (): ForcedGroup | undefined {
    return this.#driver.forced
  }

  membersChanged (): void {
    this.#driver.membersChanged()
  }

  async stop (): Promise<void> {
    await this.#driver.stop()
  }

  get #machine (): OrgStateMachine {
    return this.#driver.stateMachine as OrgStateMachine
  }

  async #write (cmd: TaskCommand, options: WriteOptions): Promise<TaskReceipt> {
    const committed = await this.#driver.propose(encodeOrgCommand(cmd), this.#requestId(options.requestId), options)
    const outcome = committed.result
    if (outcome === undefined) throw new FedmeshError('task-request-expired', 'the request id is older than its session: retried too late')
    if (!outcome.ok) throw new TaskError(outcome.code, outcome.message)
    return { taskId: outcome.taskId, index: outcome.index, term: outcome.term }
  }

  // One session per request (the session table keeps the last 10 000): concurrent requests never
  // make each other stale, and a caller's own id makes retries across nodes idempotent.
  #requestId (given: string | undefined): RequestId {
    if (given === undefined) return { client: `${this.#clientPrefix}.${++this.#requests}`, seq: 1 }
    if (!REQUEST_ID.test(given)) throw new TaskError('task-invalid', `requestId must match ${REQUEST_ID.source}`)
    return { client: `u.${given}`, seq: 1 }
  }

  #registerMetrics (registry: Registry, transport: TaskServiceInit['transport']): void {
    const status = (): RaftNodeStatus => this.#driver.status()
    const stats = this.#driver.stats
    const gauge = (name: string, help: string, value: () => number): void => collectedGauge(registry, name, help, value)
    const counter = (name: string, help: string, value: () => number): void => mirroredCounter(registry, name, help, [], () => [{ labels: {}, count: value() }])
    gauge('fedmesh_raft_term', 'Current Raft term of the org group', () => status().term)
    gauge('fedmesh_raft_leader', '1 while this node leads the org group', () => status().role === 'leader' ? 1 : 0)
    gauge('fedmesh_raft_commit_index', 'Highest committed log index', () => status().commit)
    gauge('fedmesh_raft_applied_index', 'Highest log index applied to the task board', () => status().applied)
    counter('fedmesh_federation_tasks_dropped_total', 'Federated tasks not added to this board because it was full of unfinished tasks', () => this.#machine.board.federatedDropped)
    counter('fedmesh_raft_ready_batches_total', 'Ready batches processed (each one synced write, then sends and applies)', () => stats.readies)
    mirroredCounter(registry, 'fedmesh_raft_messages_total', 'Raft messages: sent, received, rejected (malformed, unauthorized), unsendable', ['result'], () => [
      { labels: { result: 'sent' }, count: stats.sent },
      { labels: { result: 'received' }, count: stats.received },
      { labels: { result: 'malformed' }, count: stats.rejected.malformed },
      { labels: { result: 'unauthorized' }, count: stats.rejected.unauthorized },
      { labels: { result: 'unsendable' }, count: stats.unsendable }
    ])
    if (transport.messageDrops === undefined) return
    const drops = transport.messageDrops.bind(transport)
    mirroredCounter(registry, 'fedmesh_messages_dropped_total', 'One-way messages dropped, by channel and reason (full queue, unreachable peer...)', ['channel', 'reason'],
      () => drops().map(({ channel, reason, count }) => ({ labels: { channel, reason }, count })))
  }
}

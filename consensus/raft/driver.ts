import assert from 'node:assert/strict'
import { type ConfChange, decodeConfChange, deadVoterRemoval, keepsQuorumWithout, nextPromotion } from './conf-change.js'
import { type ForcedGroup, forceNewGroup } from './force-new-group.js'
import { decodeRaftMessage, encodeRaftMessage, type RaftMessage } from './messages.js'
import { type RaftConfig, RaftCore, type RaftReady, type Role } from './raft.js'
import { RaftPersistence } from './raft-persistence.js'
import type { RaftStorage } from './raft-storage.js'
import type { ConfState, Entry, RequestId } from '../types.js'
import type { Clock, Rng } from '../../base/clock.js'
import { decodeCanonical, encodeCanonical } from '../../base/codec.js'
import { FedmeshError } from '../../base/errors.js'
import { fromHex, toHex } from '../../base/bytes.js'
import type { Logger } from '../../base/log.js'
import type { Storage } from '../../base/storage.js'
import type { Transport } from '../../base/transport.js'

// The shell that runs the pure Raft core (consensus/raft) inside the node, and unchanged on every
// node of the simulator (simulations/raft-sim.ts): ticks from the Clock; the Ready loop persists hard state + entries (+ snapshot) in ONE
// synced batch, THEN sends the messages, THEN applies committed entries, THEN advances; a restart
// rebuilds the core from storage and the state machine from the snapshot plus the log.
//
// Messages ride the transport's one-way 'raft' channel. They are not signed: inside an organisation
// they travel on Noise connections, so the channel hands us the authenticated peer key; we accept a
// message only if that key is its `from`, it is addressed to us, and the sender is in the group's
// configuration or a current organisation member (a joiner hears from the leader before it knows
// the configuration). Proposals on a follower are forwarded to the leader as MsgProp; the proposer
// re-proposes with the same request id until the entry applies, and the state machine's session
// table applies a retried request once.
//
// Membership administration (remove a member, list the members with the leader's view of their
// health) is served by the leader on the 'raft-admin' request channel, so it works from any
// member; the leader refuses a removal that would leave the group without a healthy quorum
// (etcd's strict reconfiguration check). With deadVoterRemoveAfterMs set, the leader also removes
// voters silent for that long under the same rule (Consul's autopilot dead-server cleanup).

export const RAFT_CHANNEL = 'raft'
export const RAFT_ADMIN_CHANNEL = 'raft-admin'

/** The replicated state machine: deterministic apply, deterministic snapshot. */
export interface StateMachine<R> {
  /** Applies a committed 'normal' entry (leader no-ops have empty data); returns the client's result. */
  apply(e: Entry): R | undefined
  /** Sees each committed membership change (with its context), in log order. */
  applyConfChange?(cc: ConfChange): void
  snapshot(): Uint8Array
}

export interface RaftDriverInit<R> {
  /** Group name: `org/<org>` for an organisation's group. */
  group: string
  selfKey: string
  storage: Storage
  transport: Transport
  clock: Clock
  rng: Rng
  logger: Logger
  /** Builds the state machine from a snapshot's data (empty: the initial state). */
  restore: (snapshot: Uint8Array) => StateMachine<R>
  /** Used on first start only: this node creates the group as its sole voter. */
  founder: boolean
  /** Keys (hex) of the other verified members of our organisation, alive now. */
  orgMembers: () => string[]
  tickMs?: number
  electionTicks?: number
  heartbeatTicks?: number
  /** Learners are promoted to voters while there are fewer voters than this. */
  votersMax?: number
  /** A learner is promoted once it is within this many entries of the leader's log. */
  promotionLagEntriesMax?: number
  /** The leader removes a voter it has not heard from for this long (0: never), if a healthy quorum remains. */
  deadVoterRemoveAfterMs?: number
  /** The context recorded with a removal asked for by an operator or a leaving member. */
  removalContext?: (key: string) => Uint8Array | undefined
  /** Disaster recovery, once: become the group's only voter from the local log (force-new-group.ts). */
  forceNewGroup?: { removedContext: Uint8Array }
  snapshotEntries?: number
  /** Entries kept below a snapshot, so a slightly lagging follower needs no snapshot. */
  compactionRetainEntries?: number
  requestTimeoutMs?: number
  pendingRequestsMax?: number
  /** Passed to the core as they are: its flow control, and the test-only bugs the simulator must catch. */
  core?: Pick<RaftConfig, 'appendEntriesMax' | 'inflightMax' | 'unsafe'>
  /** Test-only shell bug: each Ready's messages go out before its write is durable (the simulator must catch it). */
  unsafeSendBeforePersist?: boolean
}

export interface Committed<R> { index: number, term: number, result: R | undefined }

/** The core's log as it stands (durable or not yet), read-only. */
export type RaftLogView = Pick<RaftStorage, 'firstIndex' | 'lastIndex' | 'term' | 'entry' | 'snapshot'>

export interface RaftNodeStatus {
  group: string
  role: Role
  term: number
  leader: string | null
  commit: number
  applied: number
  lastIndex: number
  voters: string[]
  learners: string[]
}

export type RaftErrorCode = 'raft-timeout' | 'raft-stopped' | 'raft-busy' | 'raft-not-leader' | 'raft-failed' | 'raft-not-member' | 'raft-quorum-at-risk'

export class RaftError extends FedmeshError {
  constructor (code: RaftErrorCode, message: string) {
    super(code, message)
    this.name = 'RaftError'
  }
}

interface Waiter<T> {
  promise: Promise<T>
  resolve: (value: T) => void
  reject: (err: Error) => void
  deadlineMs: number
  retryAtMs: number
}

interface ProposalWaiter<R> extends Waiter<Committed<R>> { data: Uint8Array, requestId: RequestId }
interface ReadWaiter extends Waiter<void> { context: string, index?: number }

/** A member as the leader sees it: how far its log matches, how long since it was heard from. */
export interface RaftMember { key: string, role: 'voter' | 'learner', match: number, lastContactAgoMs: number, healthy: boolean }
export interface RaftMembers { group: string, term: number, leader: string, commit: number, members: RaftMember[] }
export type LeaveResult = { removed: true } | { removed: false, reason: 'not-a-member' | 'last-voter' | RaftErrorCode | string, message: string }

export interface RaftMessageStats { received: number, rejected: Record<'malformed' | 'unauthorized', number>, sent: number, unsendable: number, readies: number }

const RECONCILE_EVERY_TICKS = 5

type DriverSettings<R> = Required<Omit<RaftDriverInit<R>, 'founder' | 'core' | 'forceNewGroup'>>
const ADMIN_REQUEST_BYTES_MAX = 1024
const ADMIN_TIMEOUT_MS = 5_000

export class RaftDriver<R> {
  readonly group: string
  readonly stats: RaftMessageStats = { received: 0, rejected: { malformed: 0, unauthorized: 0 }, sent: 0, unsendable: 0, readies: 0 }
  readonly #init: DriverSettings<R>
  readonly #core: RaftCore
  readonly #persistence: RaftPersistence
  readonly #proposals = new Map<string, ProposalWaiter<R>>()
  readonly #reads = new Map<string, ReadWaiter>()
  readonly #stopListening: () => void
  #stateMachine: StateMachine<R>
  #members = new Set<string>()
  #stopTicking: () => void = () => {}
  #pumping: Promise<void> | undefined
  #ticks = 0
  #readSeq = 0
  #stopped = false
  #failure: Error | undefined
  /** When each peer was last heard from (monotonic ms), and since when this node leads. */
  readonly #contactMs = new Map<string, number>()
  #leaderSinceMs: number | undefined
  /** What a forced recovery at this start did (for the node to audit). */
  forced: ForcedGroup | undefined

  private constructor (init: DriverSettings<R>, core: RaftCore, persistence: RaftPersistence, stateMachine: StateMachine<R>) {
    this.group = init.group
    this.#init = init
    this.#core = core
    this.#persistence = persistence
    this.#stateMachine = stateMachine
    this.#members = new Set(init.orgMembers())
    const stopMessages = init.transport.onMessage(RAFT_CHANNEL, (from, bytes) => this.#receive(from, bytes))
    const stopAdmin = init.transport.onRequest(RAFT_ADMIN_CHANNEL, async (from, bytes) => await this.#serveAdmin(from, bytes))
    this.#stopListening = () => { stopMessages(); stopAdmin() }
  }

  static async start<R> (init: RaftDriverInit<R>): Promise<RaftDriver<R>> {
    const full = {
      tickMs: 50, electionTicks: 10, heartbeatTicks: 2, votersMax: 5, promotionLagEntriesMax: 64, snapshotEntries: 1000, compactionRetainEntries: 100,
      requestTimeoutMs: 10_000, pendingRequestsMax: 4096, unsafeSendBeforePersist: false, deadVoterRemoveAfterMs: 0, removalContext: () => undefined, ...init
    }
    const storageGroup = init.group.replace(/[^A-Za-z0-9_-]/g, '-')
    const persistence = new RaftPersistence(init.storage, storageGroup)
    const founders = await foundersOf(init.storage, storageGroup, init.founder ? init.selfKey : undefined)
    const view = await persistence.load(founders)
    const forced = init.forceNewGroup === undefined ? undefined : forceNewGroup(view, init.selfKey, init.forceNewGroup.removedContext)
    if (forced !== undefined) await persistence.save({ entries: forced.entries, hardState: forced.hardState, messages: [], committedEntries: [], readStates: [] })
    // The core snapshots whichever state machine is current (a leader's snapshot replaces it).
    let driver: RaftDriver<R> | undefined
    const core = new RaftCore({
      id: init.selfKey,
      rng: init.rng,
      storage: view,
      electionTicks: full.electionTicks,
      heartbeatTicks: full.heartbeatTicks,
      snapshotEntries: full.snapshotEntries,
      compactionRetainEntries: full.compactionRetainEntries,
      takeSnapshot: () => driver!.#stateMachine.snapshot(),
      ...init.core
    })
    driver = new RaftDriver<R>(full, core, persistence, init.restore(view.snapshot().data))
    driver.forced = forced
    if (forced !== undefined) init.logger.warn({ group: init.group, removed: forced.removed, commit: forced.hardState.commit }, 'raft group forced to this node as its only voter')
    const conf = core.status().conf
    if (conf.voters.length === 1 && conf.voters[0] === init.selfKey) core.campaign()
    driver.#stopTicking = init.clock.every(full.tickMs, () => driver.#tick())
    driver.#kick()
    init.logger.info({ group: init.group, term: view.hardState.term, commit: view.hardState.commit, voters: conf.voters.length, founder: founders !== undefined }, 'raft group started')
    return driver
  }

  /** The state machine as of the applied index (reads that need no linearizability). */
  get stateMachine (): StateMachine<R> { return this.#stateMachine }

  /** Why this node left the group (a failed synced write, or a bug the core asserted on), if it did. */
  get failure (): Error | undefined { return this.#failure }

  /** Test hook for the simulator's log checkers (log matching, leader completeness). */
  get log (): RaftLogView { return this.#core.storage }

  /**
   * Appends data to the log and resolves once it is committed and applied here. Safe to retry with
   * the same request id (here or on another node): the state machine applies it once.
   */
  async propose (data: Uint8Array, requestId: RequestId, options: { timeoutMs?: number } = {}): Promise<Committed<R>> {
    this.#assertRunning()
    const key = `${requestId.client}\u0000${requestId.seq}`
    const existing = this.#proposals.get(key)
    if (existing !== undefined) return await existing.promise
    if (this.#proposals.size >= this.#init.pendingRequestsMax) throw new RaftError('raft-busy', `${this.#proposals.size} proposals pending`)
    const waiter: ProposalWaiter<R> = { ...this.#waiter<Committed<R>>(options.timeoutMs), data, requestId }
    this.#proposals.set(key, waiter)
    this.#submitProposal(waiter)
    try {
      return await waiter.promise
    } finally {
      this.#proposals.delete(key)
    }
  }

  /** Resolves once the local state machine reflects every write committed before the call (ReadIndex). */
  async readBarrier (options: { timeoutMs?: number } = {}): Promise<void> {
    this.#assertRunning()
    if (this.#reads.size >= this.#init.pendingRequestsMax) throw new RaftError('raft-busy', `${this.#reads.size} reads pending`)
    const context = `${this.#init.selfKey.slice(0, 8)}:${++this.#readSeq}`
    const waiter: ReadWaiter = { ...this.#waiter<void>(options.timeoutMs), context }
    this.#reads.set(context, waiter)
    this.#submitRead(waiter)
    try {
      await waiter.promise
    } finally {
      this.#reads.delete(context)
    }
  }

  /**
   * Removes a member from the group, on the leader (asked through the admin channel from any other
   * member); resolves once the removal is committed. Refused for a key that is no member
   * (raft-not-member), and for a voter whose removal would leave no healthy quorum (raft-quorum-at-risk).
   */
  async removeMember (key: string, options: { timeoutMs?: number } = {}): Promise<void> {
    this.#assertRunning()
    const lead = this.#core.status().lead
    if (lead === this.#init.selfKey) return await this.#removeAsLeader(key, options.timeoutMs ?? this.#init.requestTimeoutMs)
    if (lead === '') throw new RaftError('raft-not-leader', 'no leader yet')
    await this.#init.transport.request(fromHex(lead), RAFT_ADMIN_CHANNEL, encodeCanonical(['remove', key]), { timeoutMs: options.timeoutMs ?? this.#init.requestTimeoutMs })
  }

  /** The group's members with the leader's view of their health (asked of the leader from any member). */
  async members (): Promise<RaftMembers> {
    this.#assertRunning()
    const lead = this.#core.status().lead
    if (lead === this.#init.selfKey) return this.#membersAsLeader()
    if (lead === '') throw new RaftError('raft-not-leader', 'no leader: the group has no quorum, or is electing one')
    return decodeMembers(await this.#init.transport.request(fromHex(lead), RAFT_ADMIN_CHANNEL, encodeCanonical(['members']), { timeoutMs: ADMIN_TIMEOUT_MS }))
  }

  /**
   * Leaves the group before this node stops: hands leadership over, then has the leader remove it,
   * unless it is the last voter or the voters left would have no healthy quorum (then it stays a
   * member, and the group goes on as after a crash).
   */
  async leave (): Promise<LeaveResult> {
    const s = this.#core.status()
    if (!s.conf.voters.includes(this.#init.selfKey) && !s.conf.learners.includes(this.#init.selfKey)) return { removed: false, reason: 'not-a-member', message: 'this node is not a member of the group' }
    if (s.conf.voters.length === 1 && s.conf.voters[0] === this.#init.selfKey) return { removed: false, reason: 'last-voter', message: 'this node is the group\'s only voter' }
    await this.#handOverLeadership()
    // Long enough for a handover or an election; a group without a leader does not hold up the stop.
    const deadlineMs = this.#init.clock.monotonicMs() + 4 * this.#init.electionTicks * this.#init.tickMs
    for (;;) {
      try {
        await this.removeMember(this.#init.selfKey, { timeoutMs: Math.max(1, Math.ceil(deadlineMs - this.#init.clock.monotonicMs())) })
        this.#init.logger.info({ group: this.group }, 'raft: left the group')
        return { removed: true }
      } catch (err) {
        const code = err instanceof FedmeshError ? err.code : 'raft-failed'
        // A leader change meanwhile (or none yet after the handover): ask again until the deadline.
        if (code !== 'raft-not-leader' || this.#init.clock.monotonicMs() >= deadlineMs) {
          this.#init.logger.warn({ group: this.group, code, err: (err as Error).message }, 'raft: stays a member on leaving')
          return { removed: false, reason: code, message: (err as Error).message }
        }
        await this.#init.clock.sleep(this.#init.tickMs)
      }
    }
  }

  /** The organisation's membership changed: the leader reconciles the group at once. */
  membersChanged (): void {
    this.#members = new Set(this.#init.orgMembers())
    this.#reconcile()
  }

  status (): RaftNodeStatus {
    const s = this.#core.status()
    return {
      group: this.group, role: s.role, term: s.term, leader: s.lead === '' ? null : s.lead, commit: s.commit, applied: s.applied,
      lastIndex: s.lastIndex, voters: [...s.conf.voters], learners: [...s.conf.learners]
    }
  }

  /** Graceful stop: hand leadership to the most caught-up voter first, then stop ticking and listening. */
  async stop (): Promise<void> {
    if (this.#stopped) return
    await this.#handOverLeadership()
    this.#stopped = true
    this.#stopTicking()
    this.#stopListening()
    await this.#pumping
    this.#rejectAll(new RaftError('raft-stopped', 'the raft group stopped on this node'))
  }

  async #handOverLeadership (): Promise<void> {
    const s = this.#core.status()
    const successor = s.role === 'leader'
      ? s.conf.voters.filter((v) => v !== this.#init.selfKey).sort((a, b) => (s.progress.get(b)?.match ?? 0) - (s.progress.get(a)?.match ?? 0))[0]
      : undefined
    if (successor !== undefined && this.#core.transferLeadership(successor)) {
      this.#kick()
      const deadlineMs = this.#init.clock.monotonicMs() + 2 * this.#init.electionTicks * this.#init.tickMs
      while (this.#core.status().role === 'leader' && this.#init.clock.monotonicMs() < deadlineMs && this.#failure === undefined) {
        await this.#init.clock.sleep(this.#init.tickMs)
      }
      this.#init.logger.info({ group: this.group, to: successor, transferred: this.#core.status().role !== 'leader' }, 'raft leadership transfer')
    }
  }

  // ---- membership administration (the leader's side) ----

  async #removeAsLeader (key: string, timeoutMs: number): Promise<void> {
    const conf = this.#core.status().conf
    if (!conf.voters.includes(key) && !conf.learners.includes(key)) throw new RaftError('raft-not-member', `${key} is not a member of ${this.group}: nothing was removed`)
    if (conf.voters.length === 1 && conf.voters[0] === key) throw new FedmeshError('raft-invalid-conf-change', `cannot remove ${key}: it is the group's only voter`)
    if (conf.voters.includes(key) && !keepsQuorumWithout(conf, key, (v) => this.#healthy(v))) {
      throw new RaftError('raft-quorum-at-risk', `removing ${key} would leave ${conf.voters.length - 1} voters without a healthy quorum: nothing was removed`)
    }
    const context = this.#init.removalContext(key)
    const cc: ConfChange = context === undefined ? { type: 'remove', node: key } : { type: 'remove', node: key, context }
    const deadlineMs = this.#init.clock.monotonicMs() + timeoutMs
    for (;;) {
      // Checked every round: a stop (or a failure) meanwhile ends the removal.
      this.#assertRunning()
      const s = this.#core.status()
      if (!s.conf.voters.includes(key) && !s.conf.learners.includes(key)) {
        this.#init.logger.info({ group: this.group, node: key }, 'raft member removed')
        return
      }
      if (s.role !== 'leader') throw new RaftError('raft-not-leader', s.lead === '' ? 'no leader yet' : `ask the leader, ${s.lead}`)
      const result = this.#core.proposeConfChange(cc)
      if (!result.ok && result.reason === 'invalid-conf-change') throw new FedmeshError('raft-invalid-conf-change', `cannot remove ${key} (the last voter?)`)
      this.#kick()
      if (this.#init.clock.monotonicMs() > deadlineMs) throw new RaftError('raft-timeout', `removal of ${key} did not commit in time`)
      await this.#init.clock.sleep(this.#init.tickMs)
    }
  }

  #membersAsLeader (): RaftMembers {
    const s = this.#core.status()
    const row = (key: string, role: RaftMember['role']): RaftMember => ({
      key, role, match: s.progress.get(key)?.match ?? 0, lastContactAgoMs: Math.round(this.#silentForMs(key)), healthy: this.#healthy(key)
    })
    return { group: this.group, term: s.term, leader: this.#init.selfKey, commit: s.commit, members: [...s.conf.voters.map((k) => row(k, 'voter')), ...s.conf.learners.map((k) => row(k, 'learner'))] }
  }

  // Requests from other members: served only by the leader (no forwarding on, so no loops).
  async #serveAdmin (from: Uint8Array, bytes: Uint8Array): Promise<Uint8Array> {
    if (!this.#isMember(toHex(from))) throw new RaftError('raft-not-member', 'admin requests are served to group and org members only')
    if (bytes.length > ADMIN_REQUEST_BYTES_MAX) throw new FedmeshError('rpc-malformed', 'admin request too large')
    const v = decodeCanonical(bytes)
    const s = this.#core.status()
    if (s.lead !== this.#init.selfKey) throw new RaftError('raft-not-leader', s.lead === '' ? 'no leader yet' : `ask the leader, ${s.lead}`)
    if (Array.isArray(v) && v.length === 1 && v[0] === 'members') return encodeMembers(this.#membersAsLeader())
    if (Array.isArray(v) && v.length === 2 && v[0] === 'remove' && typeof v[1] === 'string' && /^[0-9a-f]{1,256}$/.test(v[1])) {
      await this.#removeAsLeader(v[1], this.#init.requestTimeoutMs)
      return new Uint8Array()
    }
    throw new FedmeshError('rpc-malformed', 'admin request must be [\'members\'] or [\'remove\', key]')
  }

  /** Time since the leader last heard from a member; never more than it has led (nothing to go by before). */
  #silentForMs (key: string): number {
    if (key === this.#init.selfKey) return 0
    const nowMs = this.#init.clock.monotonicMs()
    return nowMs - Math.max(this.#contactMs.get(key) ?? -Infinity, this.#leaderSinceMs ?? nowMs)
  }

  /** Heard from within two election timeouts (a member not heard from at all is not healthy, whatever the leader's age). */
  #healthy (key: string): boolean {
    if (key === this.#init.selfKey) return true
    const contactMs = this.#contactMs.get(key)
    return contactMs !== undefined && this.#init.clock.monotonicMs() - contactMs <= this.#healthyWithinMs()
  }

  #healthyWithinMs (): number {
    return 2 * this.#init.electionTicks * this.#init.tickMs
  }

  // ---- inputs ----

  #receive (from: Uint8Array, bytes: Uint8Array): void {
    if (this.#stopped || this.#failure !== undefined) return
    let m: RaftMessage
    try {
      m = decodeRaftMessage(bytes)
    } catch {
      this.stats.rejected.malformed++
      return
    }
    if (toHex(from) !== m.from || m.to !== this.#init.selfKey || !this.#isMember(m.from)) {
      this.stats.rejected.unauthorized++
      return
    }
    this.stats.received++
    this.#contactMs.set(m.from, this.#init.clock.monotonicMs())
    this.#core.step(m)
    this.#kick()
  }

  #tick (): void {
    if (this.#stopped || this.#failure !== undefined) return
    this.#core.tick()
    this.#ticks++
    const nowMs = this.#init.clock.monotonicMs()
    const leading = this.#core.status().role === 'leader'
    if (leading && this.#leaderSinceMs === undefined) this.#leaderSinceMs = nowMs
    if (!leading) this.#leaderSinceMs = undefined
    for (const w of this.#proposals.values()) this.#revisit(w, nowMs, () => this.#submitProposal(w))
    for (const w of this.#reads.values()) this.#revisit(w, nowMs, () => this.#submitRead(w))
    if (this.#ticks % RECONCILE_EVERY_TICKS === 0) this.membersChanged()
    this.#kick()
  }

  #revisit (w: Pick<Waiter<never>, 'reject' | 'deadlineMs' | 'retryAtMs'>, nowMs: number, resubmit: () => void): void {
    if (nowMs >= w.deadlineMs) w.reject(new RaftError('raft-timeout', `not committed within the request timeout (leader: ${this.#core.status().lead || 'none'})`))
    else if (nowMs >= w.retryAtMs) resubmit()
  }

  #submitProposal (w: ProposalWaiter<R>): void {
    const result = this.#core.propose(w.data, w.requestId)
    w.retryAtMs = this.#init.clock.monotonicMs() + (result.ok ? this.#retryMs() : this.#init.tickMs)
    this.#kick()
  }

  #submitRead (w: ReadWaiter): void {
    const result = this.#core.readIndex(w.context)
    w.retryAtMs = this.#init.clock.monotonicMs() + (result.ok ? this.#retryMs() : this.#init.tickMs)
    this.#kick()
  }

  // The leader's membership policy: add verified org members as learners, promote caught-up learners.
  #reconcile (): void {
    const s = this.#core.status()
    if (s.role !== 'leader' || this.#stopped) return
    const inGroup = new Set([...s.conf.voters, ...s.conf.learners])
    const joiner = [...this.#members].sort().find((key) => !inGroup.has(key))
    const deadAfterMs = this.#init.deadVoterRemoveAfterMs
    const dead = deadAfterMs > 0 ? deadVoterRemoval(s.conf, this.#init.selfKey, (v) => this.#silentForMs(v), deadAfterMs, this.#healthyWithinMs()) : undefined
    const cc: ConfChange | undefined = joiner !== undefined
      ? { type: 'add-learner', node: joiner }
      : dead ?? nextPromotion(s.conf, s.progress, s.lastIndex, this.#init.votersMax, this.#init.promotionLagEntriesMax)
    if (cc === undefined) return
    const result = this.#core.proposeConfChange(cc)
    if (result.ok) {
      this.#init.logger.info({ group: this.group, change: cc.type, node: cc.node, ...(cc === dead ? { autopilot: 'dead voter', silentForMs: Math.round(this.#silentForMs(cc.node)) } : {}) }, 'raft membership change proposed')
      this.#kick()
    }
  }

  // ---- the Ready loop ----

  // The pump starts after the current I/O phase (clock.yield), so that every message and request
  // that arrived in it is stepped first and goes into one Ready: one synced write, one send per peer.
  #kick (): void {
    if (this.#pumping !== undefined || this.#failure !== undefined || !this.#core.hasReady()) return
    this.#pumping = this.#init.clock.yield().then(async () => await this.#pump()).finally(() => { this.#pumping = undefined })
  }

  async #pump (): Promise<void> {
    try {
      while (this.#core.hasReady() && this.#failure === undefined) {
        const rd = this.#core.ready()
        this.stats.readies++
        if (this.#init.unsafeSendBeforePersist) this.#sendAll(rd.messages)
        await this.#persistence.save(rd)
        if (!this.#init.unsafeSendBeforePersist) this.#sendAll(rd.messages)
        this.#applyAll(rd)
        this.#core.advance(rd)
        this.#serveReads()
      }
    } catch (err) {
      // A failed synced write leaves our promises unknown: stop participating rather than guess.
      this.#failure = err as Error
      this.#stopTicking()
      this.#init.logger.error({ group: this.group, err: (err as Error).message }, 'raft persistence failed; this node leaves the group until restarted')
      this.#rejectAll(new RaftError('raft-failed', `raft storage failed: ${(err as Error).message}`))
    }
  }

  #sendAll (messages: RaftMessage[]): void {
    for (const m of messages) {
      let bytes: Uint8Array
      try {
        bytes = encodeRaftMessage(m)
      } catch (err) {
        this.stats.unsendable++
        this.#init.logger.warn({ group: this.group, type: m.type, err: (err as Error).message }, 'raft message not sendable')
        continue
      }
      this.#init.transport.send(fromHex(m.to), RAFT_CHANNEL, bytes)
      this.stats.sent++
    }
  }

  #applyAll (rd: RaftReady): void {
    if (rd.snapshot !== undefined) {
      this.#stateMachine = this.#init.restore(rd.snapshot.data)
      this.#init.logger.info({ group: this.group, index: rd.snapshot.meta.index }, 'raft snapshot installed')
    }
    for (const e of rd.committedEntries) {
      if (e.type === 'conf') this.#stateMachine.applyConfChange?.(decodeConfChange(e.data))
      const result = e.type === 'normal' ? this.#stateMachine.apply(e) : undefined
      if (e.requestId === undefined) continue
      this.#proposals.get(`${e.requestId.client}\u0000${e.requestId.seq}`)?.resolve({ index: e.index, term: e.term, result })
    }
    for (const rs of rd.readStates) {
      const w = this.#reads.get(rs.context)
      if (w !== undefined) w.index = rs.index
    }
  }

  #serveReads (): void {
    const applied = this.#core.status().applied
    for (const w of this.#reads.values()) if (w.index !== undefined && w.index <= applied) w.resolve()
  }

  // ---- helpers ----

  #isMember (key: string): boolean {
    const conf = this.#core.status().conf
    return conf.voters.includes(key) || conf.learners.includes(key) || this.#members.has(key)
  }

  #retryMs (): number {
    return 2 * this.#init.electionTicks * this.#init.tickMs
  }

  #waiter<T> (timeoutMs: number | undefined): Waiter<T> {
    let resolve!: (value: T) => void
    let reject!: (err: Error) => void
    const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject, deadlineMs: this.#init.clock.monotonicMs() + (timeoutMs ?? this.#init.requestTimeoutMs), retryAtMs: 0 }
  }

  #rejectAll (err: Error): void {
    for (const w of this.#proposals.values()) w.reject(err)
    for (const w of this.#reads.values()) w.reject(err)
  }

  #assertRunning (): void {
    if (this.#failure !== undefined) throw new RaftError('raft-failed', `raft storage failed: ${this.#failure.message}`)
    if (this.#stopped) throw new RaftError('raft-stopped', 'the raft group stopped on this node')
  }
}

/**
 * The group's founding configuration, recorded on the founder's first start so that restarts
 * rebuild the same implied bootstrap snapshot. A node that already holds Raft state never founds.
 */
async function foundersOf (storage: Storage, group: string, founderKey: string | undefined): Promise<ConfState | undefined> {
  const key = `raft-founders/${group}`
  const stored = await storage.get(key)
  if (stored !== undefined) {
    const v = decodeCanonical(stored)
    assert.ok(Array.isArray(v) && v.every((k) => typeof k === 'string'), `corrupt ${key}`)
    return { voters: v as string[], learners: [] }
  }
  if (founderKey === undefined || await storage.get(`raft/${group}/hardstate`) !== undefined) return undefined
  await storage.batch([{ type: 'put', key, value: encodeCanonical([founderKey]) }])
  return { voters: [founderKey], learners: [] }
}

function encodeMembers (m: RaftMembers): Uint8Array {
  return encodeCanonical([m.group, m.term, m.leader, m.commit, m.members.map((r) => [r.key, r.role, r.match, r.lastContactAgoMs, r.healthy])])
}

/** The leader's answer, checked field by field (it is still bytes off the network). */
function decodeMembers (bytes: Uint8Array): RaftMembers {
  const v = decodeCanonical(bytes)
  const count = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0
  if (!Array.isArray(v) || v.length !== 5 || typeof v[0] !== 'string' || !count(v[1]) || typeof v[2] !== 'string' || !count(v[3]) || !Array.isArray(v[4]) || v[4].length > 256) {
    throw new FedmeshError('rpc-malformed', 'malformed members answer')
  }
  const members = (v[4] as unknown[]).map((r): RaftMember => {
    if (!Array.isArray(r) || r.length !== 5 || typeof r[0] !== 'string' || (r[1] !== 'voter' && r[1] !== 'learner') || !count(r[2]) || !count(r[3]) || typeof r[4] !== 'boolean') {
      throw new FedmeshError('rpc-malformed', 'malformed member row')
    }
    return { key: r[0], role: r[1], match: r[2], lastContactAgoMs: r[3], healthy: r[4] }
  })
  return { group: v[0], term: v[1], leader: v[2], commit: v[3], members }
}

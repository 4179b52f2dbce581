import { RaftDriver, type StateMachine } from '../consensus/raft/driver.js'
import { decodeRaftMessage } from '../consensus/raft/messages.js'
import type { RaftConfig } from '../consensus/raft/raft.js'
import { fromHex, toHex } from '../base/bytes.js'
import { silentLogger } from '../base/log.js'
import { KvStateMachine, type KvResult, type KvWrite, encodeWrite } from './kv-state-machine.js'
import { type Operation, type RegisterInput, type RegisterOutput, checkHistory } from './linearizability.js'
import { InvariantViolation, RaftCheckers, type RaftNodeView, describeFailure } from './raft-checkers.js'
import { type LinkProfile, SimNetwork } from './world/network.js'
import { SimTrace, type TraceOptions } from './trace.js'
import { Prng } from './world/prng.js'
import { type SimClock, SimScheduler } from './world/scheduler.js'
import { SimStorage } from './world/sim-storage.js'
import { type SimPacket, SimTopics, SimTransport } from './world/sim-transport.js'

// TigerBeetle-style deterministic simulation of one organisation's Raft group, every node running
// the production RaftDriver (the core inside it, its Ready loop, persistence, membership policy)
// on its own simulated clock, transport and disk. One seed draws every fault setting; a safety
// phase runs client operations (driver.propose and readBarrier) under packet loss, duplication,
// reordering and partitions, crashes (kill -9: the disk keeps a random prefix of the writes in
// flight), graceful restarts of the leader (stop() hands leadership over), joiners the leader adds
// and promotes, and removals; a liveness phase heals everything and requires every client
// operation to complete within a bound. Checkers run every tick; the client history must be
// linearizable.

export interface SimOptions extends TraceOptions {
  seed: number
  /** Safety-phase length; the liveness phase is bounded separately. */
  ticks?: number
  nodes?: 3 | 5
  unsafe?: RaftConfig['unsafe']
  /** Test-only client bug: read the contacted node's state without a read barrier (stale reads). */
  unsafeLocalReads?: boolean
  /** Test-only driver bug: send a Ready's messages before its disk write is durable. */
  unsafeSendBeforePersist?: boolean
}

export interface SimConfig {
  nodes: number
  clients: number
  keys: number
  network: LinkProfile
  crashPerMille: number
  /** Every node loses power at once (what was acknowledged must survive, whoever acknowledged it). */
  powerLossPerMille: number
  partitionPerMille: number
  /** The leader restarts gracefully, handing leadership over on the way out. */
  transferPerMille: number
  diskLatencyMs: readonly [number, number]
  heartbeatTicks: number
  appendEntriesMax: number
  inflightMax: number
  snapshotEntries: number
  compactionRetainEntries: number
  opPerMille: number
  /** Nodes that join the organisation later; the leader adds them as learners and promotes them while voters are few. */
  joiners: number
  membershipPerMille: number
  removePerMille: number
}

export interface SimStats {
  ticks: number
  opsCompleted: number
  opsCompletedLiveness: number
  elections: number
  crashes: number
  partitions: number
  transfers: number
  dropped: number
  duplicated: number
  snapshotsInstalled: number
  confChanges: number
}

export interface SimResult {
  seed: number
  ok: boolean
  violation?: { invariant: string, message: string }
  /** The last events before the failure (replay with --seed S --trace for all of them). */
  trace: string[]
  stats: SimStats
  config: SimConfig
  linearizability: 'ok' | 'unknown' | 'illegal'
}

/** The drivers' tick, and the world's: faults, clients and checkers run once per tick. */
const TICK_MS = 10
const ELECTION_TICKS = 10
const REQUEST_TIMEOUT_MS = 40 * TICK_MS
const LIVENESS_TICKS_MAX = 600
const LIVENESS_OPS_PER_CLIENT = 2
const PROMOTION_LAG_ENTRIES_MAX = 8
const PACKETS_PER_LINK_MAX = 256
const GROUP = 'sim'

export function drawConfig (prng: Prng, nodes?: 3 | 5): SimConfig {
  return {
    nodes: nodes ?? prng.pick([3, 5]),
    clients: prng.intInclusive(2, 4),
    keys: prng.intInclusive(1, 3),
    network: {
      latencyMs: [1, prng.intInclusive(1, 5) * TICK_MS],
      dropPerMille: prng.pick([0, 10, 50, 150]),
      duplicatePerMille: prng.pick([0, 10, 50])
    },
    crashPerMille: prng.pick([0, 2, 5, 10, 30]),
    powerLossPerMille: prng.pick([0, 0, 1, 3]),
    partitionPerMille: prng.pick([0, 5, 15]),
    transferPerMille: prng.pick([0, 2, 5]),
    diskLatencyMs: [0, prng.pick([0, 1, 3]) * TICK_MS],
    heartbeatTicks: prng.pick([1, 2, 3]),
    appendEntriesMax: prng.pick([1, 4, 16]),
    inflightMax: prng.pick([1, 2, 4]),
    snapshotEntries: prng.pick([8, 32, 128]),
    compactionRetainEntries: prng.pick([0, 4, 16]),
    opPerMille: prng.pick([50, 150, 300]),
    joiners: prng.pick([0, 0, 1, 2]),
    membershipPerMille: prng.pick([10, 50]),
    removePerMille: prng.pick([0, 0, 3])
  }
}

interface PendingOp {
  seq: number
  key: string
  input: RegisterInput
  write?: KvWrite
  callMs: number
  /** An attempt is waiting on some node; the next one waits for it to fail or time out. */
  attempting: boolean
  retryAtMs: number
}

interface Client { id: string, seq: number, op?: PendingOp, lastSeen: Map<string, string | null>, livenessOps: number }

interface SimNode {
  name: string
  /** The node's key (hex): its Raft id and its network address. */
  key: string
  founder: boolean
  /** A verified member of the organisation: the leader's driver adds it to the group. */
  member: boolean
  /** Removed from the group: stopped for good. */
  decommissioned: boolean
  /** Bumped on every stop, so that callbacks of a dead process are recognised. */
  incarnation: number
  clock: SimClock
  storage: SimStorage
  transport?: SimTransport
  driver?: RaftDriver<KvResult>
  kv?: KvStateMachine
  /** Down (crashed or stopped) until then. */
  restartAtMs?: number
  stopping: boolean
}

type TraceEvent = { ms: number, text?: string, from?: string, to?: string, bytes?: Uint8Array }

export class RaftSimulation {
  readonly config: SimConfig
  readonly stats: SimStats = {
    ticks: 0, opsCompleted: 0, opsCompletedLiveness: 0, elections: 0, crashes: 0, partitions: 0, transfers: 0, dropped: 0, duplicated: 0, snapshotsInstalled: 0, confChanges: 0
  }

  readonly #options: SimOptions
  readonly #prng: Prng
  readonly #scheduler = new SimScheduler()
  readonly #world: SimClock
  readonly #network: SimNetwork<SimPacket>
  readonly #topics = new SimTopics()
  readonly #checkers = new RaftCheckers()
  readonly #nodes: SimNode[]
  readonly #byKey = new Map<string, SimNode>()
  readonly #clients: Client[]
  readonly #history: Operation[] = []
  readonly #trace: SimTrace<TraceEvent>
  #liveness = false
  #healAtMs = 0
  /** A removal under way, through that leader incarnation. */
  #removing: { by: SimNode, incarnation: number } | undefined
  #conf = ''
  #failure: unknown

  constructor (options: SimOptions) {
    this.#options = options
    this.#trace = new SimTrace(options, (e) => this.#format(e))
    this.#prng = new Prng(options.seed)
    this.config = drawConfig(this.#prng, options.nodes)
    this.#world = this.#scheduler.clock()
    this.#network = new SimNetwork(this.#scheduler, this.#prng.fork(), () => this.config.network, PACKETS_PER_LINK_MAX)
    this.#nodes = Array.from({ length: this.config.nodes + this.config.joiners }, (_, i) => {
      const clock = this.#scheduler.clock()
      const node: SimNode = {
        name: `n${i + 1}`,
        key: toHex(Uint8Array.of(i + 1)),
        // One node founds the group; the leader adds the other members as learners and promotes them.
        founder: i === 0,
        member: i < this.config.nodes,
        decommissioned: false,
        incarnation: 0,
        clock,
        storage: new SimStorage(clock, this.#prng.fork(), this.config.diskLatencyMs),
        stopping: false
      }
      this.#byKey.set(node.key, node)
      return node
    })
    this.#clients = Array.from({ length: this.config.clients }, (_, i) => ({ id: `c${i + 1}`, seq: 0, lastSeen: new Map(), livenessOps: 0 }))
  }

  async run (): Promise<SimResult> {
    let violation: SimResult['violation']
    let linearizability: SimResult['linearizability'] = 'ok'
    try {
      for (const node of this.#nodes) this.#start(node)
      this.#world.every(TICK_MS, () => this.#step())
      await this.#scheduler.runUntil((this.#options.ticks ?? 1000) * TICK_MS)
      this.#throwFailure()
      await this.#livenessPhase()
      const verdict = checkHistory(this.#history)
      linearizability = verdict.result
      if (verdict.result === 'illegal') {
        throw new InvariantViolation('linearizability', `history of key ${verdict.key} (${verdict.operations.length} ops) has no linearization`)
      }
    } catch (err) {
      violation = describeFailure(err)
    }
    this.stats.ticks = Math.floor(this.#scheduler.nowMs / TICK_MS)
    this.stats.elections = this.#checkers.elections
    this.stats.partitions = this.#network.stats.partitions
    this.stats.dropped = this.#network.stats.dropped
    this.stats.duplicated = this.#network.stats.duplicated
    const result: SimResult = { seed: this.#options.seed, ok: violation === undefined, trace: this.#trace.lines(), stats: this.stats, config: this.config, linearizability }
    if (violation !== undefined) result.violation = violation
    return result
  }

  // ---- phases ----

  #step (): void {
    this.#throwFailure()
    if (!this.#liveness) this.#injectFaults()
    for (const node of this.#nodes) if (node.restartAtMs !== undefined && !node.decommissioned && this.#now >= node.restartAtMs) this.#start(node)
    this.#changeMembership()
    for (const client of this.#clients) this.#clientTick(client)
    this.#check()
  }

  async #livenessPhase (): Promise<void> {
    this.#liveness = true
    this.#network.heal()
    const healed: LinkProfile = { ...this.config.network, dropPerMille: 0 }
    this.#network.profile = () => healed
    for (const node of this.#nodes) if (node.restartAtMs !== undefined) node.restartAtMs = this.#now
    this.#event('liveness phase: network healed, crashed nodes restart')
    const deadlineMs = this.#now + LIVENESS_TICKS_MAX * TICK_MS
    while (this.#now < deadlineMs) {
      await this.#scheduler.runUntil(this.#now + TICK_MS)
      this.#throwFailure()
      if (this.#clients.every((c) => c.op === undefined && c.livenessOps >= LIVENESS_OPS_PER_CLIENT)) return
    }
    const pending = this.#clients.filter((c) => c.op !== undefined).map((c) => `${c.id}#${c.op!.seq}`)
    throw new InvariantViolation('liveness', `client operations still pending after ${LIVENESS_TICKS_MAX} healed ticks: ${pending.join(', ') || 'none issued'}`)
  }

  #injectFaults (): void {
    const c = this.config
    const up = this.#nodes.filter((n) => n.driver !== undefined)
    if (this.#prng.chance(c.crashPerMille, 1000) && up.length > 0) {
      // Half the crashes aim at a node with a write in flight: the interesting moment to lose power.
      const writing = up.filter((n) => n.storage.inflight > 0)
      const victim = this.#prng.pick(writing.length > 0 && this.#prng.chance(1, 2) ? writing : up)
      this.#crash(victim, this.#now + this.#prng.intInclusive(1, 80) * TICK_MS)
    }
    if (this.#prng.chance(c.powerLossPerMille, 1000) && up.length > 0) {
      this.#event('power loss')
      for (const node of up) if (node.driver !== undefined) this.#crash(node, this.#now + this.#prng.intInclusive(1, 20) * TICK_MS)
    }
    if (this.#network.partitioned && this.#now >= this.#healAtMs) {
      this.#network.heal()
      this.#event('network healed')
    } else if (!this.#network.partitioned && this.#prng.chance(c.partitionPerMille, 1000)) {
      const shuffled = this.#prng.shuffle(this.#nodes.map((n) => n.key))
      const cut = this.#prng.intInclusive(1, shuffled.length - 1)
      const oneWay = this.#prng.chance(1, 3)
      this.#network.partition(shuffled.slice(0, cut), shuffled.slice(cut), oneWay)
      this.#healAtMs = this.#now + this.#prng.intInclusive(10, 120) * TICK_MS
      this.#event(`partition ${this.#names(shuffled.slice(0, cut))} ${oneWay ? '->' : '|'} ${this.#names(shuffled.slice(cut))}`)
    }
    const leader = this.#leader()
    if (leader !== undefined && this.#prng.chance(c.transferPerMille, 1000)) this.#restartGracefully(leader)
  }

  /** The organisation around the group: joiners become members, and now and then a voter is removed for good. */
  #changeMembership (): void {
    const joiner = this.#nodes.find((n) => !n.member && !n.decommissioned)
    if (joiner !== undefined && this.#prng.chance(this.config.membershipPerMille, 1000)) {
      joiner.member = true
      this.#event(`${joiner.name} joins the organisation`)
      for (const n of this.#nodes) n.driver?.membersChanged()
    }
    const leader = this.#leader()
    if (leader === undefined) return
    const s = leader.driver!.status()
    const conf = `voters ${this.#names(s.voters)} learners ${this.#names(s.learners)}`
    if (conf !== this.#conf) {
      this.#conf = conf
      this.stats.confChanges++
      this.#event(`${leader.name} leads with ${conf}`)
    }
    const votersLive = s.voters.every((v) => !this.#byKey.get(v)!.decommissioned)
    if (!this.#liveness && this.#removing === undefined && votersLive && s.voters.length > 3 && this.#prng.chance(this.config.removePerMille, 1000)) {
      const victim = this.#byKey.get(this.#prng.pick(s.voters.filter((v) => v !== leader.key)))!
      victim.decommissioned = true
      victim.member = false
      if (victim.restartAtMs === undefined) this.#down(victim)
      delete victim.restartAtMs
      this.#event(`${victim.name} is decommissioned`)
    }
    const removing = this.#removing
    if (removing !== undefined && removing.by.incarnation === removing.incarnation) return
    // Whoever leads now removes a decommissioned node still in the group (a leader lost meanwhile gave up).
    const gone = [...s.voters, ...s.learners].map((k) => this.#byKey.get(k)!).find((n) => n.decommissioned)
    if (gone === undefined) return
    const removal = { by: leader, incarnation: leader.incarnation }
    this.#removing = removal
    leader.driver!.removeMember(gone.key, { timeoutMs: REQUEST_TIMEOUT_MS }).then(
      () => this.#event(`${leader.name} removed ${gone.name} from the group`),
      (err: Error) => this.#event(`${leader.name} did not remove ${gone.name}: ${err.message}`)
    ).finally(() => { if (this.#removing === removal) this.#removing = undefined })
  }

  // ---- nodes ----

  #start (node: SimNode): void {
    delete node.restartAtMs
    const incarnation = node.incarnation
    const transport = new SimTransport(this.#network, this.#topics, node.clock, fromHex(node.key))
    transport.onHandlerError = (err) => this.#fail(err)
    transport.inbound = (from, packet) => {
      if (packet.kind === 'message') this.#trace.record({ ms: this.#now, from, to: node.key, bytes: packet.bytes })
      return packet
    }
    node.transport = transport
    const c = this.config
    RaftDriver.start<KvResult>({
      group: GROUP,
      selfKey: node.key,
      storage: node.storage,
      transport,
      clock: node.clock,
      rng: this.#prng.fork(),
      logger: silentLogger,
      restore: (data) => this.#restore(node, data),
      founder: node.founder,
      orgMembers: () => this.#nodes.filter((n) => n !== node && n.member && n.restartAtMs === undefined).map((n) => n.key),
      tickMs: TICK_MS,
      electionTicks: ELECTION_TICKS,
      heartbeatTicks: c.heartbeatTicks,
      promotionLagEntriesMax: PROMOTION_LAG_ENTRIES_MAX,
      snapshotEntries: c.snapshotEntries,
      compactionRetainEntries: c.compactionRetainEntries,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      core: { appendEntriesMax: c.appendEntriesMax, inflightMax: c.inflightMax, ...(this.#options.unsafe === undefined ? {} : { unsafe: this.#options.unsafe }) },
      unsafeSendBeforePersist: this.#options.unsafeSendBeforePersist === true
    }).then((driver) => {
      if (node.incarnation !== incarnation) return
      node.driver = driver
      const s = driver.status()
      this.#event(`${node.name} starts (term ${s.term}, commit ${s.commit}, log ${driver.log.firstIndex()}..${s.lastIndex})`)
    }, (err: unknown) => {
      // A crash while the driver was still loading closes its storage under it: not a failure.
      if (node.incarnation === incarnation) this.#fail(err)
    })
  }

  /** The driver's state machine: the KV store, each applied entry checked against every other node's. */
  #restore (node: SimNode, data: Uint8Array): StateMachine<KvResult> {
    const kv = new KvStateMachine(this.config.clients, data)
    if (node.driver !== undefined) {
      this.stats.snapshotsInstalled++
      this.#event(`${node.name} installs a snapshot`)
    }
    node.kv = kv
    return {
      apply: (e) => {
        this.#checkers.recordApplied(node.name, e, Math.max(0, ...this.#live().map((n) => n.driver!.status().term)))
        return kv.apply(e)
      },
      snapshot: () => kv.snapshot()
    }
  }

  #crash (node: SimNode, restartAtMs: number): void {
    this.stats.crashes++
    const { torn, lost } = this.#down(node)
    node.restartAtMs = restartAtMs
    const writes = torn + lost === 0 ? '' : ` (${torn} of ${torn + lost} writes in flight reached the disk)`
    this.#event(`${node.name} crashes${writes}; restarts at ${restartAtMs}`)
  }

  /** The leader stops (handing leadership to the most caught-up voter), then starts again. */
  #restartGracefully (node: SimNode): void {
    const incarnation = node.incarnation
    node.stopping = true
    this.#event(`${node.name} stops gracefully`)
    node.driver!.stop().then(() => {
      if (node.incarnation !== incarnation) return
      const handedOver = node.driver!.status().role !== 'leader'
      if (handedOver) this.stats.transfers++
      this.#down(node)
      node.restartAtMs = this.#now + this.#prng.intInclusive(1, 20) * TICK_MS
      this.#event(`${node.name} stopped ${handedOver ? 'after handing leadership over' : 'still leading'}; restarts at ${node.restartAtMs}`)
    }, (err: unknown) => this.#fail(err))
  }

  /** The process is gone: its clock, its connections; a new process will find the disk as it was left. */
  #down (node: SimNode): { torn: number, lost: number } {
    node.incarnation++
    node.clock.halt()
    node.transport?.close()
    node.clock = this.#scheduler.clock()
    const crashed = node.storage.crash(node.clock)
    node.storage = crashed.storage
    node.stopping = false
    delete node.transport
    delete node.driver
    delete node.kv
    return crashed
  }

  // ---- clients ----

  #clientTick (client: Client): void {
    if (client.op === undefined) {
      const budget = this.#liveness ? client.livenessOps < LIVENESS_OPS_PER_CLIENT : true
      if (!budget || !this.#prng.chance(this.config.opPerMille, 1000)) return
      if (this.#liveness) client.livenessOps++
      client.op = this.#newOp(client)
      this.#event(`${client.id}#${client.op.seq} invokes ${JSON.stringify(client.op.input)} on ${client.op.key}`)
    }
    const op = client.op
    if (op.attempting || this.#now < op.retryAtMs) return
    const up = this.#live()
    if (up.length === 0) {
      op.retryAtMs = this.#now + TICK_MS
      return
    }
    const node = this.#prng.pick(up)
    op.attempting = true
    // A crashed node never answers: the client gives up on it after the request timeout, as a real one would.
    const gaveUp = this.#world.sleep(REQUEST_TIMEOUT_MS).then(() => { throw new Error('client timeout') })
    Promise.race([this.#attempt(node, client, op), gaveUp]).then((output) => {
      // Any attempt may complete the operation: a write retried under one request id applies once.
      if (client.op === op) this.#complete(client, output)
    }, (err: unknown) => {
      if (err instanceof InvariantViolation) this.#fail(err)
      if (client.op !== op) return
      op.attempting = false
      op.retryAtMs = this.#now + this.#prng.intInclusive(2, 6) * TICK_MS
    })
  }

  async #attempt (node: SimNode, client: Client, op: PendingOp): Promise<RegisterOutput> {
    const driver = node.driver!
    if (op.write !== undefined) {
      const committed = await driver.propose(encodeWrite(op.write), { client: client.id, seq: op.seq }, { timeoutMs: REQUEST_TIMEOUT_MS })
      if (committed.result === undefined) throw new InvariantViolation('exactly once', `${client.id}#${op.seq} committed at ${committed.index} without its result`)
      return committed.result
    }
    if (this.#options.unsafeLocalReads !== true) await driver.readBarrier({ timeoutMs: REQUEST_TIMEOUT_MS })
    return node.kv!.get(op.key)
  }

  #newOp (client: Client): PendingOp {
    const seq = ++client.seq
    const key = `k${this.#prng.intInclusive(1, this.config.keys)}`
    const value = `${client.id}.${seq}`
    const roll = this.#prng.intInclusive(1, 10)
    const base = { seq, key, callMs: this.#now, attempting: false, retryAtMs: this.#now }
    if (roll <= 4) return { ...base, input: { kind: 'get' } }
    if (roll <= 8) return { ...base, input: { kind: 'put', value }, write: { kind: 'put', key, value } }
    const from = client.lastSeen.get(key) ?? null
    return { ...base, input: { kind: 'cas', from, to: value }, write: { kind: 'cas', key, from, to: value } }
  }

  #complete (client: Client, output: KvResult | RegisterOutput): void {
    const op = client.op!
    this.#history.push({ client: client.id, key: op.key, callTick: op.callMs, returnTick: this.#now, input: op.input, output })
    if (op.input.kind === 'get') client.lastSeen.set(op.key, output as string | null)
    else if (op.input.kind === 'put' || output === true) client.lastSeen.set(op.key, op.input.kind === 'put' ? op.input.value : op.input.to)
    this.stats.opsCompleted++
    if (this.#liveness) this.stats.opsCompletedLiveness++
    this.#event(`${client.id}#${op.seq} returns ${JSON.stringify(output)}`)
    delete client.op
  }

  // ---- checking and tracing ----

  #check (): void {
    const views: RaftNodeView[] = this.#live().map((n) => {
      const s = n.driver!.status()
      return { id: n.name, role: s.role, term: s.term, log: n.driver!.log }
    })
    const before = this.#checkers.elections
    this.#checkers.checkElectionSafety(views)
    if (this.#checkers.elections > before) {
      for (const v of views) if (v.role === 'leader') this.#event(`${v.id} leads term ${v.term}`)
    }
    this.#checkers.checkLeaderCompleteness(views)
    this.#checkers.checkLogMatching(views)
  }

  /** Nodes whose driver runs (started, not stopped). */
  #live (): SimNode[] {
    return this.#nodes.filter((n) => n.driver !== undefined)
  }

  #leader (): SimNode | undefined {
    return this.#nodes.find((n) => n.driver !== undefined && !n.stopping && n.driver.status().role === 'leader')
  }

  /** A driver failing (its storage, or an assertion in the core) or a handler throwing fails the seed at the next tick. */
  #fail (err: unknown): void {
    this.#failure ??= err
  }

  #throwFailure (): void {
    if (this.#failure !== undefined) throw this.#failure
    const failed = this.#live().find((n) => n.driver!.failure !== undefined)
    if (failed !== undefined) throw failed.driver!.failure!
  }

  get #now (): number {
    return this.#scheduler.nowMs
  }

  #names (keys: readonly string[]): string {
    return keys.length === 0 ? '-' : keys.map((k) => this.#byKey.get(k)?.name ?? k).join(',')
  }

  #event (text: string): void {
    this.#trace.record({ ms: this.#now, text })
  }



  /** Messages are kept as the bytes that arrived and decoded only to be shown. */
  #format (e: TraceEvent): string {
    if (e.text !== undefined) return `t=${e.ms} ${e.text}`
    const m = decodeRaftMessage(e.bytes!)
    const detail = m.type === 'MsgApp'
      ? ` prev=(${m.index},${m.logTerm}) n=${m.entries.length} commit=${m.commit}`
      : m.type === 'MsgAppResp' ? ` index=${m.index}${m.reject ? ` reject hint=${m.rejectHint}` : ''}` : m.reject ? ' reject' : ''
    return `t=${e.ms} ${this.#names([e.from!])}->${this.#names([e.to!])} ${m.type} term=${m.term}${detail}`
  }
}

export async function runRaftSeed (options: SimOptions): Promise<SimResult> {
  return await new RaftSimulation(options).run()
}

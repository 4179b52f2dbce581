import { RaftCore, type RaftConfig, type RaftReady } from '../consensus/raft/raft.js'
import { type RaftMessage, decodeRaftMessage, encodeRaftMessage } from '../consensus/raft/messages.js'
import type { ConfState } from '../consensus/types.js'
import { type ConfChange, nextPromotion } from '../consensus/raft/conf-change.js'
import { KvStateMachine, type KvWrite, encodeWrite } from './kv-state-machine.js'
import { type Operation, type RegisterInput, type RegisterOutput, checkHistory } from './linearizability.js'
import { Prng } from './world/prng.js'
import { InvariantViolation, RaftCheckers } from './raft-checkers.js'
import { SimDisk } from './sim-disk.js'
import { type NetworkOptions, SimNetwork } from './sim-network.js'

// TigerBeetle-style deterministic simulation of a Raft group running the production core: one seed
// draws every fault setting; a safety phase runs client operations under network faults, crashes
// (unsynced disk writes lost) and leadership transfers; a liveness phase heals everything and
// requires all client operations to complete within a bound. Checkers run after every tick, and the
// recorded client history must be linearizable.

export interface SimOptions {
  seed: number
  /** Safety-phase length; the liveness phase is bounded separately. */
  ticks?: number
  nodes?: 3 | 5
  /** Print every event as it happens. */
  trace?: boolean
  traceEventsMax?: number
  unsafe?: RaftConfig['unsafe']
  /** Test-only: serve reads from the contacted node's state without ReadIndex (stale reads). */
  unsafeLocalReads?: boolean
  /** Test-only shell bug: send a Ready's messages before its disk write is durable. */
  unsafeSendBeforePersist?: boolean
  print?: (line: string) => void
}

export interface SimConfig {
  nodes: number
  clients: number
  keys: number
  network: NetworkOptions
  crashPerMille: number
  partitionPerMille: number
  transferPerMille: number
  diskLatencyTicksMax: number
  heartbeatTicks: number
  appendEntriesMax: number
  inflightMax: number
  snapshotEntries: number
  compactionRetainEntries: number
  opPerMille: number
  /** Nodes that start outside the group and are added as learners, then promoted. */
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

const ELECTION_TICKS = 10
const REQUEST_TIMEOUT_TICKS = 40
const LIVENESS_TICKS_MAX = 600
const LIVENESS_OPS_PER_CLIENT = 2
const INBOX_MESSAGES_MAX = 1024

export function drawConfig (prng: Prng, nodes?: 3 | 5): SimConfig {
  return {
    nodes: nodes ?? prng.pick([3, 5]),
    clients: prng.intInclusive(2, 4),
    keys: prng.intInclusive(1, 3),
    network: {
      delayTicksMin: 1,
      delayTicksMax: prng.intInclusive(1, 5),
      dropPerMille: prng.pick([0, 10, 50, 150]),
      duplicatePerMille: prng.pick([0, 10, 50]),
      packetsPerLinkMax: 256
    },
    crashPerMille: prng.pick([0, 2, 5, 10, 30]),
    partitionPerMille: prng.pick([0, 5, 15]),
    transferPerMille: prng.pick([0, 2, 5]),
    diskLatencyTicksMax: prng.pick([0, 1, 3]),
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
  callTick: number
  attempt: number
  retryTick: number
}

interface Client { id: string, seq: number, op?: PendingOp, lastSeen: Map<string, string | null>, livenessOps: number }

interface SimNode {
  id: string
  founder: boolean
  /** Removed from the group: stopped for good. */
  decommissioned: boolean
  disk: SimDisk
  up: boolean
  restartTick: number
  core?: RaftCore
  kv?: KvStateMachine
  inbox: RaftMessage[]
  /** Clients waiting at this node: writes by request key, reads by ReadIndex context. */
  writeWaiters: Map<string, Client>
  readWaiters: Map<string, Client>
  readsReady: Array<{ context: string, index: number }>
}

type TraceEvent = { tick: number, text?: string, message?: RaftMessage }

export class RaftSimulation {
  readonly config: SimConfig
  readonly stats: SimStats = {
    ticks: 0, opsCompleted: 0, opsCompletedLiveness: 0, elections: 0, crashes: 0, partitions: 0, transfers: 0, dropped: 0, duplicated: 0, snapshotsInstalled: 0, confChanges: 0
  }

  readonly #options: SimOptions
  readonly #prng: Prng
  readonly #network: SimNetwork
  readonly #checkers = new RaftCheckers()
  readonly #nodes: SimNode[]
  readonly #clients: Client[]
  readonly #founders: ConfState
  readonly #history: Operation[] = []
  readonly #trace: TraceEvent[] = []
  #tick = 0
  #liveness = false
  #healTick = 0

  constructor (options: SimOptions) {
    this.#options = options
    this.#prng = new Prng(options.seed)
    this.config = drawConfig(this.#prng, options.nodes)
    this.#network = new SimNetwork(this.#prng.fork(), this.config.network)
    const ids = Array.from({ length: this.config.nodes + this.config.joiners }, (_, i) => `n${i + 1}`)
    this.#founders = { voters: ids.slice(0, this.config.nodes), learners: [] }
    this.#nodes = ids.map((id, i) => ({
      id,
      founder: i < this.config.nodes,
      decommissioned: false,
      disk: new SimDisk(i < this.config.nodes ? this.#founders : undefined),
      up: false, restartTick: 0, inbox: [], writeWaiters: new Map(), readWaiters: new Map(), readsReady: []
    }))
    this.#clients = Array.from({ length: this.config.clients }, (_, i) => ({ id: `c${i + 1}`, seq: 0, lastSeen: new Map(), livenessOps: 0 }))
  }

  async run (): Promise<SimResult> {
    let violation: SimResult['violation']
    let linearizability: SimResult['linearizability'] = 'ok'
    try {
      for (const node of this.#nodes) await this.#start(node)
      const ticks = this.#options.ticks ?? 1000
      for (; this.#tick < ticks; this.#tick++) await this.#step()
      await this.#livenessPhase()
      const verdict = checkHistory(this.#history)
      linearizability = verdict.result
      if (verdict.result === 'illegal') {
        throw new InvariantViolation('linearizability', `history of key ${verdict.key} (${verdict.operations.length} ops) has no linearization`)
      }
    } catch (err) {
      const invariant = err instanceof InvariantViolation ? err.invariant : (err as Error).name === 'AssertionError' ? 'core assertion' : 'crash'
      violation = { invariant, message: err instanceof InvariantViolation ? err.detail : (err as Error).message }
    }
    this.stats.ticks = this.#tick
    this.stats.elections = this.#checkers.elections
    this.stats.partitions = this.#network.stats.partitions
    this.stats.dropped = this.#network.stats.dropped
    this.stats.duplicated = this.#network.stats.duplicated
    const result: SimResult = { seed: this.#options.seed, ok: violation === undefined, trace: this.#formatTrace(), stats: this.stats, config: this.config, linearizability }
    if (violation !== undefined) result.violation = violation
    return result
  }

  // ---- phases ----

  async #step (): Promise<void> {
    if (!this.#liveness) this.#injectFaults()
    for (const node of this.#nodes) if (!node.up && !node.decommissioned && this.#tick >= node.restartTick) await this.#start(node)
    this.#changeMembership()
    for (const p of this.#network.deliver(this.#tick)) {
      const node = this.#nodes.find((n) => n.id === p.to)!
      if (!node.up || node.inbox.length >= INBOX_MESSAGES_MAX) continue
      const m = decodeRaftMessage(p.bytes)
      this.#event({ tick: this.#tick, message: m })
      node.inbox.push(m)
    }
    for (const node of this.#nodes) if (node.up) await this.#nodeTick(node)
    for (const client of this.#clients) this.#clientTick(client)
    this.#check()
  }

  async #livenessPhase (): Promise<void> {
    this.#liveness = true
    this.#network.heal()
    this.#network.options = { ...this.#network.options, dropPerMille: 0 }
    for (const node of this.#nodes) if (!node.up && !node.decommissioned) node.restartTick = this.#tick
    this.#event({ tick: this.#tick, text: 'liveness phase: network healed, crashed nodes restart' })
    const deadline = this.#tick + LIVENESS_TICKS_MAX
    for (; this.#tick < deadline; this.#tick++) {
      await this.#step()
      if (this.#clients.every((c) => c.op === undefined && c.livenessOps >= LIVENESS_OPS_PER_CLIENT)) return
    }
    const pending = this.#clients.filter((c) => c.op !== undefined).map((c) => `${c.id}#${c.op!.seq}`)
    throw new InvariantViolation('liveness', `client operations still pending after ${LIVENESS_TICKS_MAX} healed ticks: ${pending.join(', ') || 'none issued'}`)
  }

  #injectFaults (): void {
    const c = this.config
    const up = this.#nodes.filter((n) => n.up)
    if (this.#prng.chance(c.crashPerMille, 1000) && up.length > 0) {
      // Half the crashes aim at a node with a write in flight: the interesting moment to lose power.
      const writing = up.filter((n) => n.disk.busy)
      const victim = this.#prng.pick(writing.length > 0 && this.#prng.chance(1, 2) ? writing : up)
      this.#crash(victim, this.#tick + this.#prng.intInclusive(1, 80))
    }
    if (this.#network.partitioned && this.#tick >= this.#healTick) {
      this.#network.heal()
      this.#event({ tick: this.#tick, text: 'network healed' })
    } else if (!this.#network.partitioned && this.#prng.chance(c.partitionPerMille, 1000)) {
      const shuffled = this.#prng.shuffle(this.#nodes.map((n) => n.id))
      const cut = this.#prng.intInclusive(1, shuffled.length - 1)
      const oneWay = this.#prng.chance(1, 3)
      this.#network.partition(shuffled.slice(0, cut), shuffled.slice(cut), oneWay)
      this.#healTick = this.#tick + this.#prng.intInclusive(10, 120)
      this.#event({ tick: this.#tick, text: `partition ${shuffled.slice(0, cut).join(',')} ${oneWay ? '->' : '|'} ${shuffled.slice(cut).join(',')}` })
    }
    const leader = up.find((n) => n.core?.status().role === 'leader')
    if (leader !== undefined && this.#prng.chance(c.transferPerMille, 1000)) {
      const target = this.#prng.pick(this.#nodes.filter((n) => n !== leader)).id
      if (leader.core!.transferLeadership(target)) {
        this.stats.transfers++
        this.#event({ tick: this.#tick, text: `${leader.id} transfers leadership to ${target}` })
      }
    }
  }

  /** The shell's membership policy, run on the leader: add joiners, auto-promote, sometimes remove. */
  #changeMembership (): void {
    const leader = this.#nodes.find((n) => n.up && n.core!.status().role === 'leader')
    if (leader === undefined) return
    const core = leader.core!
    const s = core.status()
    const members = new Set([...s.conf.voters, ...s.conf.learners])
    for (const node of this.#nodes) {
      if (node.up && !node.decommissioned && !node.founder && !members.has(node.id) && node.core!.status().conf.voters.length > 0) {
        // It was in the group once and has since been removed: stop it for good.
        this.#decommission(node)
      }
    }
    let cc: ConfChange | undefined
    const live = this.#nodes.filter((n) => !n.decommissioned)
    const joiner = live.find((n) => !members.has(n.id))
    if (joiner !== undefined && this.#prng.chance(this.config.membershipPerMille, 1000)) cc = { type: 'add-learner', node: joiner.id }
    cc ??= nextPromotion(s.conf, s.progress, s.lastIndex, live.length, 8)
    const votersLive = s.conf.voters.every((v) => live.some((n) => n.id === v))
    if (cc === undefined && !this.#liveness && votersLive && s.conf.voters.length > 3 && this.#prng.chance(this.config.removePerMille, 1000)) {
      cc = { type: 'remove', node: this.#prng.pick(s.conf.voters.filter((v) => v !== leader.id)) }
    }
    if (cc !== undefined && core.proposeConfChange(cc).ok) {
      this.stats.confChanges++
      this.#event({ tick: this.#tick, text: `${leader.id} proposes ${cc.type} ${cc.node}` })
      if (cc.type === 'remove') this.#decommission(this.#nodes.find((n) => n.id === cc.node)!)
    }
  }

  #decommission (node: SimNode): void {
    node.decommissioned = true
    if (node.up) this.#crash(node, Infinity)
    this.#event({ tick: this.#tick, text: `${node.id} is decommissioned` })
  }

  // ---- nodes ----

  async #start (node: SimNode): Promise<void> {
    const view = await node.disk.load()
    const kv = new KvStateMachine(this.config.clients, view.snapshot().data)
    node.kv = kv
    node.core = new RaftCore({
      id: node.id,
      rng: this.#prng.fork(),
      storage: view,
      electionTicks: ELECTION_TICKS,
      heartbeatTicks: this.config.heartbeatTicks,
      appendEntriesMax: this.config.appendEntriesMax,
      inflightMax: this.config.inflightMax,
      snapshotEntries: this.config.snapshotEntries,
      compactionRetainEntries: this.config.compactionRetainEntries,
      takeSnapshot: () => node.kv!.snapshot(),
      ...(this.#options.unsafe === undefined ? {} : { unsafe: this.#options.unsafe })
    })
    node.up = true
    this.#event({ tick: this.#tick, text: `${node.id} starts (term ${view.hardState.term}, commit ${view.hardState.commit}, log ${view.firstIndex}..${view.lastIndex()})` })
  }

  #crash (node: SimNode, restartTick: number): void {
    this.stats.crashes++
    const lost = node.disk.crash()
    this.#event({ tick: this.#tick, text: `${node.id} crashes${lost ? ' losing an unsynced write' : ''}; restarts at ${restartTick}` })
    node.up = false
    node.restartTick = restartTick
    delete node.core
    delete node.kv
    node.inbox = []
    node.writeWaiters.clear()
    node.readWaiters.clear()
    node.readsReady = []
  }

  async #nodeTick (node: SimNode): Promise<void> {
    if (node.disk.busy) {
      const done = await node.disk.complete(this.#tick)
      if (done === undefined) return // the disk is busy: the node stalls
      this.#afterWrite(node, done)
    }
    const core = node.core!
    for (const m of node.inbox) core.step(m)
    node.inbox = []
    core.tick()
    for (let round = 0; round < 4 && !node.disk.busy && core.hasReady(); round++) {
      const rd = core.ready()
      if (this.#options.unsafeSendBeforePersist === true) this.#sendAll(rd)
      node.disk.submit(rd, this.#tick + this.#prng.intInclusive(0, this.config.diskLatencyTicksMax))
      const done = await node.disk.complete(this.#tick)
      if (done !== undefined) this.#afterWrite(node, done)
    }
  }

  /** A Ready is durable: now send, then apply, then advance (the Ready contract). */
  #afterWrite (node: SimNode, rd: RaftReady): void {
    const core = node.core!
    if (this.#options.unsafeSendBeforePersist !== true) this.#sendAll(rd)
    if (rd.snapshot !== undefined) {
      node.kv = new KvStateMachine(this.config.clients, rd.snapshot.data)
      this.stats.snapshotsInstalled++
      this.#event({ tick: this.#tick, text: `${node.id} installs snapshot at ${rd.snapshot.meta.index}` })
    }
    const termMax = Math.max(...this.#nodes.map((n) => n.core?.status().term ?? 0))
    for (const e of rd.committedEntries) {
      this.#checkers.recordApplied(node.id, e, termMax)
      const result = node.kv!.apply(e)
      if (e.requestId === undefined || result === undefined) continue
      const client = node.writeWaiters.get(`${e.requestId.client}:${e.requestId.seq}`)
      if (client?.op?.seq === e.requestId.seq) this.#complete(client, result)
    }
    node.readsReady.push(...rd.readStates)
    core.advance(rd)
    const applied = core.status().applied
    node.readsReady = node.readsReady.filter((rs) => {
      if (rs.index > applied) return true
      const client = node.readWaiters.get(rs.context)
      if (client?.op !== undefined && rs.context.startsWith(`${client.id}:${client.op.seq}:`)) {
        this.#complete(client, node.kv!.get(client.op.key))
      }
      return false
    })
  }

  #sendAll (rd: RaftReady): void {
    for (const m of rd.messages) this.#network.send(m.from, m.to, encodeRaftMessage(m), this.#tick)
  }

  // ---- clients ----

  #clientTick (client: Client): void {
    if (client.op === undefined) {
      const budget = this.#liveness ? client.livenessOps < LIVENESS_OPS_PER_CLIENT : true
      if (!budget || !this.#prng.chance(this.config.opPerMille, 1000)) return
      if (this.#liveness) client.livenessOps++
      client.op = this.#newOp(client)
      this.#event({ tick: this.#tick, text: `${client.id}#${client.op.seq} invokes ${JSON.stringify(client.op.input)} on ${client.op.key}` })
    }
    const op = client.op
    if (this.#tick < op.retryTick) return
    const up = this.#nodes.filter((n) => n.up)
    if (up.length === 0) {
      op.retryTick = this.#tick + 1
      return
    }
    const node = this.#prng.pick(up)
    op.attempt++
    const result = op.write === undefined
      ? this.#submitRead(node, client, `${client.id}:${op.seq}:${op.attempt}`)
      : node.core!.propose(encodeWrite(op.write), { client: client.id, seq: op.seq })
    if (result.ok && op.write !== undefined) node.writeWaiters.set(`${client.id}:${op.seq}`, client)
    op.retryTick = this.#tick + (result.ok ? REQUEST_TIMEOUT_TICKS : this.#prng.intInclusive(2, 6))
  }

  #submitRead (node: SimNode, client: Client, context: string): ReturnType<RaftCore['readIndex']> {
    if (this.#options.unsafeLocalReads === true) {
      this.#complete(client, node.kv!.get(client.op!.key))
      return { ok: true }
    }
    const result = node.core!.readIndex(context)
    if (result.ok) node.readWaiters.set(context, client)
    return result
  }

  #newOp (client: Client): PendingOp {
    const seq = ++client.seq
    const key = `k${this.#prng.intInclusive(1, this.config.keys)}`
    const value = `${client.id}.${seq}`
    const roll = this.#prng.intInclusive(1, 10)
    const base = { seq, key, callTick: this.#tick, attempt: 0, retryTick: this.#tick }
    if (roll <= 4) return { ...base, input: { kind: 'get' } }
    if (roll <= 8) return { ...base, input: { kind: 'put', value }, write: { kind: 'put', key, value } }
    const from = client.lastSeen.get(key) ?? null
    return { ...base, input: { kind: 'cas', from, to: value }, write: { kind: 'cas', key, from, to: value } }
  }

  #complete (client: Client, output: RegisterOutput): void {
    const op = client.op!
    this.#history.push({ client: client.id, key: op.key, callTick: op.callTick, returnTick: this.#tick, input: op.input, output })
    if (op.input.kind === 'get') client.lastSeen.set(op.key, output as string | null)
    else if (op.input.kind === 'put' || output === true) client.lastSeen.set(op.key, op.input.kind === 'put' ? op.input.value : op.input.to)
    this.stats.opsCompleted++
    if (this.#liveness) this.stats.opsCompletedLiveness++
    this.#event({ tick: this.#tick, text: `${client.id}#${op.seq} returns ${JSON.stringify(output)}` })
    delete client.op
  }

  // ---- checking and tracing ----

  #check (): void {
    const cores = this.#nodes.flatMap((n) => (n.up ? [n.core!] : []))
    const before = this.#checkers.elections
    this.#checkers.checkElectionSafety(cores)
    if (this.#checkers.elections > before) {
      for (const c of cores) if (c.status().role === 'leader') this.#event({ tick: this.#tick, text: `${c.id} leads term ${c.status().term}` })
    }
    this.#checkers.checkLeaderCompleteness(cores)
    this.#checkers.checkLogMatching(cores)
  }

  #event (e: TraceEvent): void {
    if (this.#options.trace === true) {
      (this.#options.print ?? console.log)(formatEvent(e))
      return
    }
    this.#trace.push(e)
    if (this.#trace.length > 2 * (this.#options.traceEventsMax ?? 60)) this.#trace.splice(0, this.#trace.length - (this.#options.traceEventsMax ?? 60))
  }

  #formatTrace (): string[] {
    return this.#trace.slice(-(this.#options.traceEventsMax ?? 60)).map(formatEvent)
  }
}

function formatEvent (e: TraceEvent): string {
  if (e.text !== undefined) return `t=${e.tick} ${e.text}`
  const m = e.message!
  const detail = m.type === 'MsgApp'
    ? ` prev=(${m.index},${m.logTerm}) n=${m.entries.length} commit=${m.commit}`
    : m.type === 'MsgAppResp' ? ` index=${m.index}${m.reject ? ` reject hint=${m.rejectHint}` : ''}` : m.reject ? ' reject' : ''
  return `t=${e.tick} ${m.from}->${m.to} ${m.type} term=${m.term}${detail}`
}

export async function runRaftSeed (options: SimOptions): Promise<SimResult> {
  return await new RaftSimulation(options).run()
}

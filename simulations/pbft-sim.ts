import assert from 'node:assert/strict'
import { decode, encode } from 'cborg'
import { ReplyCollector } from '../consensus/pbft/client.js'
import { PbftDriver } from '../consensus/pbft/driver.js'
import { PbftDecodeError } from '../consensus/pbft/errors.js'
import { type PbftMessage, decodePbftMessage, encodePbftMessage, sha256 } from '../consensus/pbft/messages.js'
import type { CommittedBatch, Evidence, Outbound, PbftConfig } from '../consensus/pbft/pbft.js'
import { PbftPromiseLogs, decodePromiseRecord, encodePromiseRecord } from '../consensus/pbft/promise-log.js'
import { faultsTolerated } from '../consensus/pbft/view-change.js'
import { bytesEqual, toHex } from '../base/bytes.js'
import { NodeIdentity, verify } from '../base/ed25519.js'
import { FedmeshError } from '../base/errors.js'
import { silentLogger } from '../base/log.js'
import { KvStateMachine, type KvResult, type KvWrite, encodeWrite } from './kv-state-machine.js'
import { type Operation, type RegisterInput, checkHistory } from './linearizability.js'
import { BYZANTINE_BEHAVIOURS, type ByzantineBehaviour, ByzantineReplica } from './pbft-byzantine.js'
import { PbftCheckers, requestKey } from './pbft-checkers.js'
import { InvariantViolation, describeFailure } from './raft-checkers.js'
import { type LinkProfile, SimNetwork } from './world/network.js'
import { SimTrace, type TraceOptions } from './trace.js'
import { Prng } from './world/prng.js'
import { type SimClock, SimScheduler } from './world/scheduler.js'
import { type SimPacket, SimTopics, SimTransport } from './world/sim-transport.js'

// Deterministic simulation of a federation's PBFT replicas (one per organisation), each the
// production PbftDriver with real ed25519 signatures on its host's own simulated clock and
// transport, in the style of raft-sim.ts. An organisation is modelled by what outlives its hosts:
// its Raft log, holding the replica's promises (the production PbftPromiseLogs, every record
// encoded and decoded as the task board does) and the federation state its committed batches built
// (the KV store). A host crash is the org's Raft leader dying; the next leader starts a new driver
// from that log. One seed draws every fault setting and up to f Byzantine organisations; a safety
// phase runs client writes under network faults and host crashes; a liveness phase heals
// everything and requires every client request to complete within a bound, while clients done with
// theirs keep one request each in flight (so the progress timer keeps restarting and cannot be
// what unmasks a primary censoring the others). Checkers run as batches apply; the client history
// must be linearizable.

export interface PbftSimOptions extends TraceOptions {
  seed: number
  ticks?: number
  /** PBFT_SIM_ORGS_MIN..PBFT_SIM_ORGS_MAX organisations; drawn from PBFT_SIM_ORGS_DRAWN when omitted. */
  orgs?: number
  unsafe?: PbftConfig['unsafe']
  /** Force a behaviour on every faulty replica (tests of a specific attack). */
  behaviour?: ByzantineBehaviour
  /** Healed ticks every client request must complete in (LIVENESS_TICKS_MAX by default). */
  livenessTicksMax?: number
  /**
   * The lagging-org scenario: no faulty orgs, partitions, drops or random restarts; one backup's org
   * loses its Raft leader for LAGGARD_DOWN_TICKS while the others go on, and the next leader resumes
   * from the org's promise log. It must catch up (Status, Committed) with no view change anywhere.
   */
  laggard?: boolean
}

export interface PbftSimConfig {
  orgs: number
  byzantine: Record<string, ByzantineBehaviour>
  clients: number
  keys: number
  network: LinkProfile
  partitionPerMille: number
  restartPerMille: number
  opPerMille: number
  checkpointInterval: number
  logWindow: number
  batchMax: number
  requestTimeoutTicks: number
  /** A promise record reaches the org's Raft log within this many ms, and its commit is acknowledged within as many again. */
  promiseCommitMsMax: number
}

export interface PbftSimStats {
  ticks: number
  opsCompleted: number
  opsCompletedLiveness: number
  viewChanges: number
  viewMax: number
  restarts: number
  partitions: number
  stateTransfers: number
  evidence: number
  rejected: number
  dropped: number
  /** Status messages honest replicas sent, the commit certificates (Committed) they answered with, and the batches committed from those. */
  statusSent: number
  committedSent: number
  catchUps: number
}

export interface PbftSimResult {
  seed: number
  ok: boolean
  violation?: { invariant: string, message: string }
  trace: string[]
  stats: PbftSimStats
  config: PbftSimConfig
  linearizability: 'ok' | 'unknown' | 'illegal'
}

/** The drivers' tick, and the world's: faults and clients run once per tick. */
const TICK_MS = 10
const CLIENT_RETRY_TICKS = 30
const LIVENESS_TICKS_MAX = 2500
const LIVENESS_OPS_PER_CLIENT = 2
const SNAPSHOTS_KEPT = 4
/** A state transfer asks one donor at a time, each for this long. */
const FETCH_TIMEOUT_MS = 3 * TICK_MS
/** A restarting replica's next leader usually resumes within this many ticks; one restart in LONG_RESTART_ONE_IN takes up to RESTART_LONG_TICKS_MAX. */
const RESTART_TICKS_MAX = 40
const RESTART_LONG_TICKS_MAX = 150
const LONG_RESTART_ONE_IN = 4
const LAGGARD_DOWN_TICK = 30
const LAGGARD_DOWN_TICKS = 60
const PACKETS_PER_LINK_MAX = 1024
export const PBFT_SIM_ORGS_MIN = 4
export const PBFT_SIM_ORGS_MAX = 10
/** Federation sizes a seed draws: n = 3f+1 and the sizes between, where quorums are not 2f+1. */
const PBFT_SIM_ORGS_DRAWN = [4, 4, 5, 6, 7, 8]
/** The promise log's genesis id: one federation, one epoch. */
const GENESIS = '00'.repeat(16)
/** Replica messages (and replies to clients), client requests, and state transfer (request/reply). */
const PBFT_CHANNEL = 'pbft'
const REQUEST_CHANNEL = 'pbft-request'
const STATE_CHANNEL = 'pbft-state'

/** The lagging-org scenario's settings: a window wide enough that dozens of missed batches are caught up by certificates. */
function laggardConfig (c: PbftSimConfig): PbftSimConfig {
  return {
    ...c,
    byzantine: {},
    network: { ...c.network, dropPerMille: 0 },
    partitionPerMille: 0,
    restartPerMille: 0,
    opPerMille: 300,
    checkpointInterval: 32,
    logWindow: 64,
    requestTimeoutTicks: 20
  }
}

export function drawPbftConfig (prng: Prng, orgs?: number, behaviour?: ByzantineBehaviour): PbftSimConfig {
  const n = orgs ?? prng.pick(PBFT_SIM_ORGS_DRAWN)
  assert.ok(Number.isSafeInteger(n) && n >= PBFT_SIM_ORGS_MIN && n <= PBFT_SIM_ORGS_MAX, `the simulator runs ${PBFT_SIM_ORGS_MIN}..${PBFT_SIM_ORGS_MAX} orgs`)
  const f = faultsTolerated(n)
  const ids = Array.from({ length: n }, (_, i) => `org${i + 1}`)
  const byzantine: Record<string, ByzantineBehaviour> = {}
  for (const id of prng.shuffle([...ids]).slice(0, prng.intInclusive(0, f))) byzantine[id] = behaviour ?? prng.pick(BYZANTINE_BEHAVIOURS)
  const checkpointInterval = prng.pick([2, 4, 8])
  return {
    orgs: n,
    byzantine,
    clients: prng.intInclusive(2, 4),
    keys: prng.intInclusive(1, 3),
    network: {
      latencyMs: [1, prng.intInclusive(1, 4) * TICK_MS],
      dropPerMille: prng.pick([0, 10, 50, 150]),
      duplicatePerMille: prng.pick([0, 10, 50])
    },
    partitionPerMille: prng.pick([0, 5, 15]),
    restartPerMille: prng.pick([0, 2, 5]),
    opPerMille: prng.pick([50, 150, 300]),
    checkpointInterval,
    logWindow: checkpointInterval * prng.pick([2, 4]),
    batchMax: prng.pick([1, 4, 16]),
    requestTimeoutTicks: prng.pick([10, 20]),
    promiseCommitMsMax: prng.pick([0, TICK_MS / 2, TICK_MS])
  }
}

/** The federation state an org's Raft log holds: the KV store, and what a replaying host needs. */
interface OrgState {
  kv: KvStateMachine
  lastSeq: number
  /** Per applied batch, its results; per checkpoint, the state's digest (a new host replays batches it had not marked executed). */
  results: Map<number, Array<Uint8Array | undefined>>
  digests: Map<number, Uint8Array>
  /** The latest checkpoints' states, served to replicas behind them. */
  snapshots: Map<number, Uint8Array>
}

interface Org {
  id: string
  identity: NodeIdentity
  /** Its host's key (hex) on the network: whichever node leads the org speaks for it. */
  address: string
  byzantine?: ByzantineReplica
  promises: PbftPromiseLogs
  state: OrgState
  /** Bumped on every host crash, so that callbacks of a dead host are recognised. */
  incarnation: number
  clock: SimClock
  transport?: SimTransport
  driver?: PbftDriver
  /** Leaderless until then. */
  restartAtMs?: number
}

/** background: issued in the liveness phase beyond the client's own budget, as load while others finish. */
interface ClientOp { timestamp: number, key: string, input: RegisterInput, write: KvWrite, callMs: number, retryAtMs: number, collector: ReplyCollector, background: boolean }
interface Client { id: string, transport: SimTransport, timestamp: number, op?: ClientOp, lastSeen: Map<string, string | null>, livenessOps: number }

/** The lagging-org scenario: the org, what the others had executed when it resumed, and when it got there. */
interface Laggard { id: string, target?: number, caughtUpTick?: number }

type TraceEvent = { ms: number, text?: string, to?: string, message?: PbftMessage }

export class PbftSimulation {
  readonly config: PbftSimConfig
  readonly stats: PbftSimStats = {
    ticks: 0, opsCompleted: 0, opsCompletedLiveness: 0, viewChanges: 0, viewMax: 0, restarts: 0, partitions: 0, stateTransfers: 0, evidence: 0, rejected: 0, dropped: 0,
    statusSent: 0, committedSent: 0, catchUps: 0
  }

  readonly #options: PbftSimOptions
  readonly #prng: Prng
  readonly #scheduler = new SimScheduler()
  readonly #world: SimClock
  readonly #network: SimNetwork<SimPacket>
  readonly #topics = new SimTopics()
  readonly #ids: string[]
  readonly #orgs: Org[]
  readonly #byId = new Map<string, Org>()
  readonly #clients: Client[]
  readonly #publicKeys = new Map<string, Uint8Array>()
  /** Network keys of every replica's host and every client, by replica or client id. */
  readonly #keys = new Map<string, Uint8Array>()
  readonly #checkers: PbftCheckers
  readonly #history: Operation[] = []
  /** Requests whose result a client accepted, as requestKey(client, timestamp). */
  readonly #acknowledged: string[] = []
  readonly #trace: SimTrace<TraceEvent>
  readonly #encoded = new WeakMap<PbftMessage, Uint8Array>()
  /** Valid signatures seen, by signature bytes: the key and message they sign. */
  readonly #verified = new Map<string, { key: Uint8Array, message: Uint8Array }>()
  #liveness = false
  #healAtMs = 0
  #laggard: Laggard | undefined
  #failure: unknown

  constructor (options: PbftSimOptions) {
    this.#options = options
    this.#trace = new SimTrace(options, formatEvent)
    this.#prng = new Prng(options.seed)
    const drawn = drawPbftConfig(this.#prng, options.orgs, options.behaviour)
    this.config = options.laggard === true ? laggardConfig(drawn) : drawn
    this.#world = this.#scheduler.clock()
    this.#network = new SimNetwork(this.#scheduler, this.#prng.fork(), () => this.config.network, PACKETS_PER_LINK_MAX)
    this.#checkers = new PbftCheckers(new Set(Object.keys(this.config.byzantine)))
    const ids = Array.from({ length: this.config.orgs }, (_, i) => `org${i + 1}`)
    const clientIds = Array.from({ length: this.config.clients }, (_, i) => `c${i + 1}`)
    this.#ids = ids
    const identities = ids.map(() => new NodeIdentity(this.#prng.bytes(32)))
    this.#orgs = ids.map((id, i) => {
      const identity = identities[i]!
      this.#publicKeys.set(id, identity.publicKey)
      this.#keys.set(id, identity.publicKey)
      const behaviour = this.config.byzantine[id]
      const empty = new KvStateMachine(this.config.clients)
      const o: Org = {
        id,
        identity,
        address: toHex(identity.publicKey),
        promises: new PbftPromiseLogs(),
        state: { kv: empty, lastSeq: 0, results: new Map(), digests: new Map(), snapshots: new Map([[0, empty.snapshot()]]) },
        incarnation: 0,
        clock: this.#scheduler.clock()
      }
      if (behaviour !== undefined) o.byzantine = new ByzantineReplica(id, behaviour, ids, identity, this.#prng.fork(), clientIds)
      this.#byId.set(id, o)
      return o
    })
    this.#clients = clientIds.map((id, i) => {
      const key = Uint8Array.of(0xc0, i)
      this.#keys.set(id, key)
      const c: Client = { id, transport: new SimTransport(this.#network, this.#topics, this.#world, key), timestamp: 0, lastSeen: new Map(), livenessOps: 0 }
      c.transport.onHandlerError = (err) => this.#fail(err)
      c.transport.onMessage(PBFT_CHANNEL, (_from, bytes) => {
        const m = this.#decode(bytes, id, false)
        if (m !== undefined) this.#clientReply(c, m)
      })
      return c
    })
    // Any backup of view 0 (the primary's own loss would rightly cause a view change).
    if (options.laggard === true) this.#laggard = { id: this.#prng.pick(ids.slice(1)) }
  }

  async run (): Promise<PbftSimResult> {
    let violation: PbftSimResult['violation']
    let linearizability: PbftSimResult['linearizability'] = 'ok'
    try {
      const b = Object.entries(this.config.byzantine).map(([id, behaviour]) => `${id}=${behaviour}`)
      this.#event(`${this.config.orgs} orgs, faulty: ${b.join(' ') || 'none'}`)
      for (const o of this.#orgs) this.#startHost(o)
      this.#world.every(TICK_MS, () => this.#step())
      await this.#scheduler.runUntil((this.#options.ticks ?? 400) * TICK_MS)
      this.#throwFailure()
      this.#checkLaggardCaughtUp()
      await this.#livenessPhase()
      const verdict = checkHistory(this.#history)
      linearizability = verdict.result
      if (verdict.result === 'illegal') throw new InvariantViolation('linearizability', `history of key ${verdict.key} (${verdict.operations.length} ops) has no linearization`)
    } catch (err) {
      violation = describeFailure(err)
    }
    this.stats.ticks = Math.floor(this.#scheduler.nowMs / TICK_MS)
    this.stats.partitions = this.#network.stats.partitions
    this.stats.dropped = this.#network.stats.dropped
    this.stats.evidence = this.#checkers.evidence
    for (const o of this.#orgs) {
      const s = o.driver?.status()
      if (s === undefined) continue
      this.stats.viewMax = Math.max(this.stats.viewMax, s.view)
      this.stats.viewChanges += s.viewChanges
      this.stats.rejected += Object.values(s.rejected).reduce((a, b) => a + b, 0)
      if (o.byzantine === undefined) this.stats.catchUps += s.caughtUp
    }
    const result: PbftSimResult = { seed: this.#options.seed, ok: violation === undefined, trace: this.#trace.lines(), stats: this.stats, config: this.config, linearizability }
    if (violation !== undefined) result.violation = violation
    return result
  }

  // ---- phases ----

  #step (): void {
    this.#throwFailure()
    if (!this.#liveness) this.#injectFaults()
    if (this.#laggard !== undefined) this.#watchLaggard(this.#laggard)
    for (const o of this.#orgs) if (o.restartAtMs !== undefined && this.#now >= o.restartAtMs) this.#startHost(o)
    for (const c of this.#clients) this.#clientTick(c)
  }

  async #livenessPhase (): Promise<void> {
    this.#liveness = true
    this.#network.heal()
    const healed: LinkProfile = { ...this.config.network, dropPerMille: 0 }
    this.#network.profile = () => healed
    for (const o of this.#orgs) if (o.restartAtMs !== undefined) o.restartAtMs = this.#now
    this.#event('liveness phase: network healed, restarting replicas resume')
    const livenessTicksMax = this.#options.livenessTicksMax ?? LIVENESS_TICKS_MAX
    const deadlineMs = this.#now + livenessTicksMax * TICK_MS
    while (this.#now < deadlineMs) {
      await this.#scheduler.runUntil(this.#now + TICK_MS)
      this.#throwFailure()
      if (this.#clients.every((c) => c.op === undefined) && !this.#livenessStraggling()) {
        this.#checkAcknowledgedExecuted()
        return
      }
    }
    const pending = this.#clients.filter((c) => c.op !== undefined).map((c) => `${c.id}#${c.op!.timestamp}`)
    throw new InvariantViolation('liveness', `client requests still pending after ${livenessTicksMax} healed ticks: ${pending.join(', ') || 'none issued'} (${this.#views()})`)
  }

  /** Some client has not completed its own liveness requests yet. */
  #livenessStraggling (): boolean {
    return this.#clients.some((c) => c.livenessOps < LIVENESS_OPS_PER_CLIENT || (c.op !== undefined && !c.op.background))
  }

  /** Every result a client accepted was executed by an honest replica (never lost across view changes). */
  #checkAcknowledgedExecuted (): void {
    for (const key of this.#acknowledged) {
      if (!this.#checkers.executedRequests.has(key)) throw new InvariantViolation('acknowledged request lost', `${key} was acknowledged but no honest replica executed it`)
    }
  }

  /** The lagging org goes down for a while, then tracks when it has executed what the others had when it resumed. */
  #watchLaggard (l: Laggard): void {
    const o = this.#byId.get(l.id)!
    const tick = Math.round(this.#now / TICK_MS)
    if (tick === LAGGARD_DOWN_TICK) {
      this.#crashHost(o, this.#now + LAGGARD_DOWN_TICKS * TICK_MS)
      this.#event(`${o.id}'s Raft leader crashes (the lagging-org scenario); the next leader resumes at ${o.restartAtMs!}`)
    } else if (tick === LAGGARD_DOWN_TICK + LAGGARD_DOWN_TICKS) {
      l.target = Math.max(...this.#orgs.filter((other) => other !== o).map((other) => other.driver?.status().lastExecuted ?? 0))
    } else if (l.target !== undefined && l.caughtUpTick === undefined && (o.driver?.status().lastExecuted ?? 0) >= l.target) {
      l.caughtUpTick = tick
      this.#event(`${o.id} caught up to seq ${l.target} (${o.driver!.status().caughtUp} batches from commit certificates)`)
    }
  }

  /** The lagging org caught up within two request timeouts of resuming, and no replica ever suspected a primary. */
  #checkLaggardCaughtUp (): void {
    const l = this.#laggard
    if (l === undefined) return
    const resumedTick = LAGGARD_DOWN_TICK + LAGGARD_DOWN_TICKS
    const boundTicks = 2 * this.config.requestTimeoutTicks
    if (l.caughtUpTick === undefined || l.caughtUpTick - resumedTick > boundTicks) {
      throw new InvariantViolation('catch-up', `${l.id} resumed at ${resumedTick} behind seq ${l.target ?? '?'} and had not caught up ${boundTicks} ticks later (${this.#views()})`)
    }
    const changes = this.#orgs.reduce((n, o) => n + (o.driver?.status().viewChanges ?? 0), 0)
    if (changes > 0) throw new InvariantViolation('catch-up', `${changes} view changes while ${l.id} caught up (${this.#views()})`)
  }

  #injectFaults (): void {
    const c = this.config
    if (this.#network.partitioned && this.#now >= this.#healAtMs) {
      this.#network.heal()
      this.#event('network healed')
    } else if (!this.#network.partitioned && this.#prng.chance(c.partitionPerMille, 1000)) {
      // The federation is cut; its clients still reach every org.
      const shuffled = this.#prng.shuffle([...this.#orgs])
      const cut = this.#prng.intInclusive(1, shuffled.length - 1)
      const oneWay = this.#prng.chance(1, 3)
      this.#network.partition(shuffled.slice(0, cut).map((o) => o.address), shuffled.slice(cut).map((o) => o.address), oneWay)
      this.#healAtMs = this.#now + this.#prng.intInclusive(10, 80) * TICK_MS
      this.#event(`partition ${shuffled.slice(0, cut).map((o) => o.id).join(',')} ${oneWay ? '->' : '|'} ${shuffled.slice(cut).map((o) => o.id).join(',')}`)
    }
    const honestUp = this.#orgs.filter((o) => o.driver !== undefined && o.byzantine === undefined)
    if (honestUp.length > 0 && this.#prng.chance(c.restartPerMille, 1000)) {
      const victim = this.#prng.pick(honestUp)
      // Now and then the org stays leaderless long enough to fall dozens of batches behind.
      this.#crashHost(victim, this.#now + this.#prng.intInclusive(1, this.#prng.chance(1, LONG_RESTART_ONE_IN) ? RESTART_LONG_TICKS_MAX : RESTART_TICKS_MAX) * TICK_MS)
      this.stats.restarts++
      this.#event(`${victim.id}'s Raft leader crashes; the next leader resumes at ${victim.restartAtMs!}`)
    }
  }

  // ---- organisations and their hosts ----

  /** The org's (next) Raft leader hosts its replica: a driver started from the org's promise log. */
  #startHost (o: Org): void {
    delete o.restartAtMs
    const incarnation = o.incarnation
    const clock = o.clock
    const transport = new SimTransport(this.#network, this.#topics, clock, this.#keys.get(o.id)!)
    transport.onHandlerError = (err) => this.#fail(err)
    transport.onMessage(PBFT_CHANNEL, (_from, bytes) => {
      const m = this.#decode(bytes, o.id, true)
      if (m !== undefined && o.byzantine?.inbound(m) !== false) o.driver?.step(m)
    })
    transport.onMessage(REQUEST_CHANNEL, (_from, bytes) => {
      const [client, timestamp, op] = decode(bytes) as [string, number, Uint8Array]
      if (o.byzantine?.acceptsClient(client) !== false) o.driver?.propose(op, { client, seq: timestamp })
    })
    transport.onRequest(STATE_CHANNEL, async (_from, bytes) => {
      const seq = decode(bytes) as number
      const snapshot = o.state.snapshots.get(seq)
      if (snapshot === undefined) throw new FedmeshError('pbft-state-unknown', `no state of checkpoint ${seq} here`)
      return snapshot
    })
    o.transport = transport
    const c = this.config
    PbftDriver.start({
      replicaId: o.id,
      replicas: this.#ids,
      publicKeys: this.#publicKeys,
      signer: o.identity,
      verify: (key, message, signature) => this.#verify(key, message, signature),
      checkpointInterval: c.checkpointInterval,
      requestTimeoutTicks: c.requestTimeoutTicks,
      tickMs: TICK_MS,
      host: `${o.id}.${incarnation}`,
      promiseLog: {
        load: async () => o.promises.state(GENESIS),
        // Through the org's Raft log, encoded as the task board's entry: replicated (now durable
        // whatever happens to this host), then applied and acknowledged here.
        commit: async (record) => {
          await clock.sleep(this.#commitDelayMs())
          o.promises.append(GENESIS, decodePromiseRecord(encodePromiseRecord(GENESIS, record)).record)
          await clock.sleep(this.#commitDelayMs())
        }
      },
      clock,
      logger: silentLogger,
      send: (messages) => this.#send(o, transport, messages),
      apply: async (batch) => this.#apply(o, batch),
      fetchState: async (seq, digest) => await this.#fetchState(o, transport, seq, digest).catch((err: unknown) => {
        this.#fail(err)
        return false
      }),
      evidence: (e) => this.#evidence(o, e),
      core: { logWindow: c.logWindow, batchMax: c.batchMax, ...(this.#options.unsafe === undefined ? {} : { unsafe: this.#options.unsafe }) }
    }).then((driver) => {
      if (o.incarnation !== incarnation) return
      o.driver = driver
      const s = driver.status()
      this.#event(`${o.id} resumes (view ${s.view}${s.active ? '' : ' changing'}, executed ${s.lastExecuted})`)
    }, (err: unknown) => this.#fail(err))
  }

  /** How long the org's Raft log takes to commit (or acknowledge) a record; no draw when the scenario sets no delay. */
  #commitDelayMs (): number {
    const max = this.config.promiseCommitMsMax
    return max === 0 ? 0 : this.#prng.intInclusive(0, max)
  }

  /** The org's Raft leader dies: its host's clock and connections are gone; what the org committed stays. */
  #crashHost (o: Org, restartAtMs: number): void {
    o.incarnation++
    o.clock.halt()
    o.transport?.close()
    o.clock = this.#scheduler.clock()
    o.restartAtMs = restartAtMs
    delete o.transport
    delete o.driver
  }

  /** Applies a committed batch to the org's state; a batch the org applied already (a new host replaying) gets the same answer. */
  #apply (o: Org, batch: CommittedBatch): { results: Array<Uint8Array | undefined>, digest?: Uint8Array } {
    const state = o.state
    if (batch.seq <= state.lastSeq) {
      // Above the stable checkpoint the log holds, every batch was applied one by one, never installed.
      const results = state.results.get(batch.seq)
      assert.ok(results !== undefined, `${o.id} replays batch ${batch.seq}, which its state skipped`)
      const digest = state.digests.get(batch.seq)
      return { results, ...(digest === undefined ? {} : { digest }) }
    }
    assert.equal(batch.seq, state.lastSeq + 1, `${o.id} applies batch ${batch.seq} after ${state.lastSeq}`)
    if (o.byzantine === undefined) this.#checkers.recordCommitted(o.id, batch)
    const results = batch.requests.map((req) => {
      if (decodeKvWrite(req.op) === undefined) return undefined
      const result = state.kv.apply({ term: batch.view, index: batch.seq, type: 'normal', data: req.op, requestId: { client: req.client, seq: req.timestamp } })
      return result === undefined ? undefined : encode(result)
    })
    state.lastSeq = batch.seq
    state.results.set(batch.seq, results)
    if (batch.seq % this.config.checkpointInterval !== 0) return { results }
    const snapshot = state.kv.snapshot()
    const digest = sha256(snapshot)
    state.digests.set(batch.seq, digest)
    this.#keepSnapshot(state, batch.seq, snapshot)
    if (o.byzantine === undefined) this.#checkers.recordState(o.id, batch.seq, digest)
    return { results, digest }
  }

  #keepSnapshot (state: OrgState, seq: number, snapshot: Uint8Array): void {
    state.snapshots.set(seq, snapshot)
    for (const kept of [...state.snapshots.keys()]) if (state.snapshots.size > SNAPSHOTS_KEPT && kept < seq) state.snapshots.delete(kept)
  }

  /** State transfer: ask the other orgs' hosts in turn; any state with the proven digest will do (the digest is the proof). */
  async #fetchState (o: Org, transport: SimTransport, seq: number, digest: Uint8Array): Promise<boolean> {
    // The org's state went past it already (batches applied before the executed mark was committed).
    if (o.state.lastSeq >= seq) return true
    this.#event(`${o.id} is behind stable checkpoint ${seq}: fetching the state`)
    for (const donor of this.#prng.shuffle(this.#orgs.filter((d) => d !== o))) {
      const snapshot = await transport.request(this.#keys.get(donor.id)!, STATE_CHANNEL, encode(seq), { timeoutMs: FETCH_TIMEOUT_MS }).catch(() => undefined)
      if (snapshot === undefined || !bytesEqual(sha256(snapshot), digest)) continue
      if (o.state.lastSeq >= seq) return true
      o.state.kv = new KvStateMachine(this.config.clients, snapshot)
      o.state.lastSeq = seq
      o.state.digests.set(seq, digest)
      this.#keepSnapshot(o.state, seq, snapshot)
      if (o.byzantine === undefined) this.#checkers.recordStateInstalled(o.id, seq, digest)
      this.stats.stateTransfers++
      this.#event(`${o.id} installs the state of checkpoint ${seq} from ${donor.id}`)
      return true
    }
    return false
  }

  #evidence (o: Org, e: Evidence): void {
    this.#event(`${o.id} has evidence against ${e.replica}: ${describe(e.first)} vs ${describe(e.second)}`)
    this.#checkers.recordEvidence(o.id, e)
  }

  /** ed25519 verification is a pure function of its inputs: memoised across replicas (each message is checked by up to n). */
  #verify (key: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
    const id = Buffer.from(signature.buffer, signature.byteOffset, signature.byteLength).toString('latin1')
    const known = this.#verified.get(id)
    if (known !== undefined && Buffer.compare(known.key, key) === 0 && Buffer.compare(known.message, message) === 0) return true
    const ok = verify(key, message, signature)
    if (ok) {
      if (this.#verified.size > 20_000) this.#verified.clear()
      this.#verified.set(id, { key, message })
    }
    return ok
  }

  /** What the replica says goes out as it is, or as its faulty org rewrites it, to the recipient's host or client. */
  #send (o: Org, transport: SimTransport, messages: Outbound[]): void {
    for (const { to, message } of messages) {
      if (o.byzantine === undefined && message.body.type === 'Status') this.stats.statusSent++
      if (o.byzantine === undefined && message.body.type === 'Committed') this.stats.committedSent++
      const key = this.#keys.get(to)
      if (key === undefined) continue // a reply to a client nobody runs (a faulty org's forged request)
      for (const x of o.byzantine === undefined ? [message] : o.byzantine.outbound(to, message)) {
        transport.send(key, PBFT_CHANNEL, x instanceof Uint8Array ? x : this.#encode(x))
      }
    }
  }

  /** A broadcast is one message object for every recipient: encoded once. */
  #encode (m: PbftMessage): Uint8Array {
    let bytes = this.#encoded.get(m)
    if (bytes === undefined) {
      bytes = encodePbftMessage(m)
      this.#encoded.set(m, bytes)
    }
    return bytes
  }

  /** Garbage from a faulty org is dropped; what replicas receive is traced (replies to clients are not). */
  #decode (bytes: Uint8Array, to: string, traced: boolean): PbftMessage | undefined {
    try {
      const m = decodePbftMessage(bytes)
      if (traced) this.#trace.record({ ms: this.#now, to, message: m })
      return m
    } catch (err) {
      if (!(err instanceof PbftDecodeError)) throw err
      this.#event(`${to} got undecodable bytes (${err.code})`)
      return undefined
    }
  }

  // ---- clients ----

  #clientTick (c: Client): void {
    if (c.op === undefined) {
      const background = this.#liveness && c.livenessOps >= LIVENESS_OPS_PER_CLIENT
      if (background ? !this.#livenessStraggling() : !this.#prng.chance(this.config.opPerMille, 1000)) return
      if (this.#liveness && !background) c.livenessOps++
      c.op = this.#newOp(c, background)
      this.#event(`${c.id}#${c.op.timestamp} invokes ${JSON.stringify(c.op.input)} on ${c.op.key}`)
    }
    const op = c.op
    if (this.#now < op.retryAtMs) return
    // First to one organisation's replica; on a retry, to all of them (PBFT's client rule).
    const targets = op.retryAtMs === op.callMs ? [this.#prng.pick(this.#orgs)] : this.#orgs
    const request = encode([c.id, op.timestamp, encodeWrite(op.write)])
    for (const o of targets) c.transport.send(this.#keys.get(o.id)!, REQUEST_CHANNEL, request)
    op.retryAtMs = this.#now + CLIENT_RETRY_TICKS * TICK_MS
  }

  #newOp (c: Client, background: boolean): ClientOp {
    const timestamp = ++c.timestamp
    const key = `k${this.#prng.intInclusive(1, this.config.keys)}`
    const value = `${c.id}.${timestamp}`
    const collector = new ReplyCollector(c.id, timestamp, faultsTolerated(this.config.orgs), this.#publicKeys, (k, m, s) => this.#verify(k, m, s))
    const base = { timestamp, key, callMs: this.#now, retryAtMs: this.#now, collector, background }
    if (this.#prng.chance(2, 3)) return { ...base, input: { kind: 'put', value }, write: { kind: 'put', key, value } }
    const from = c.lastSeen.get(key) ?? null
    return { ...base, input: { kind: 'cas', from, to: value }, write: { kind: 'cas', key, from, to: value } }
  }

  #clientReply (c: Client, m: PbftMessage): void {
    const op = c.op
    if (op === undefined) return
    const accepted = op.collector.add(m)
    if (accepted === undefined) return
    const output = decode(accepted) as KvResult
    this.#history.push({ client: c.id, key: op.key, callTick: op.callMs, returnTick: this.#now, input: op.input, output })
    this.#acknowledged.push(requestKey(c.id, op.timestamp))
    if (op.write.kind === 'put' || output === true) c.lastSeen.set(op.key, op.write.kind === 'put' ? op.write.value : op.write.to)
    this.stats.opsCompleted++
    if (this.#liveness) this.stats.opsCompletedLiveness++
    this.#event(`${c.id}#${op.timestamp} returns ${JSON.stringify(output)}`)
    delete c.op
  }

  // ---- failures and tracing ----

  /** A driver failing (a promise not committed, an assertion in the core, a checker in apply) or a handler throwing fails the seed at the next tick. */
  #fail (err: unknown): void {
    this.#failure ??= err
  }

  #throwFailure (): void {
    if (this.#failure !== undefined) throw this.#failure
    const failed = this.#orgs.find((o) => o.driver?.failure !== undefined)
    if (failed !== undefined) throw failed.driver!.failure!
  }

  #views (): string {
    return this.#orgs.map((o) => {
      const s = o.driver?.status()
      return s === undefined ? `${o.id}:down` : `${o.id}:v${s.view}${s.active ? '' : '?'}@${s.lastExecuted}`
    }).join(' ')
  }

  get #now (): number {
    return this.#scheduler.nowMs
  }

  #event (text: string): void {
    this.#trace.record({ ms: this.#now, text })
  }


}

/** Ops are untrusted bytes (a faulty primary may order anything): only well-formed writes are applied. */
function decodeKvWrite (op: Uint8Array): KvWrite | undefined {
  let v: unknown
  try {
    v = decode(op)
  } catch {
    return undefined
  }
  if (!Array.isArray(v) || typeof v[1] !== 'string') return undefined
  if (v[0] === 'put' && typeof v[2] === 'string') return { kind: 'put', key: v[1], value: v[2] }
  if (v[0] === 'cas' && (v[2] === null || typeof v[2] === 'string') && typeof v[3] === 'string') return { kind: 'cas', key: v[1], from: v[2], to: v[3] }
  return undefined
}

function formatEvent (e: TraceEvent): string {
  if (e.text !== undefined) return `t=${e.ms} ${e.text}`
  return `t=${e.ms} ${e.message!.from}->${e.to!} ${describe(e.message!)}`
}

function describe (m: PbftMessage): string {
  const b = m.body
  const view = 'view' in b ? ` v=${b.view}` : ''
  const seq = 'seq' in b ? ` seq=${b.seq}` : ''
  const digest = 'digest' in b ? ` d=${Buffer.from(b.digest).toString('hex').slice(0, 8)}` : ''
  const extra = b.type === 'PrePrepare' ? ` n=${b.batch.length}` : b.type === 'ViewChange' ? ` stable=${b.stableSeq} P=${b.prepared.length}` : b.type === 'NewView' ? ` V=${b.viewChanges.length} O=${b.prePrepares.length}` : ''
  return `${b.type}${view}${seq}${digest}${extra}`
}

export async function runPbftSeed (options: PbftSimOptions): Promise<PbftSimResult> {
  return await new PbftSimulation(options).run()
}

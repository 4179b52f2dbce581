import assert from 'node:assert/strict'
import { decode, encode } from 'cborg'
import { ReplyCollector } from '../consensus/pbft/client.js'
import { PbftDecodeError } from '../consensus/pbft/errors.js'
import { type PbftMessage, decodePbftMessage, encodePbftMessage, sha256 } from '../consensus/pbft/messages.js'
import { type PbftConfig, PbftCore, type PbftReady, type StableCheckpoint } from '../consensus/pbft/pbft.js'
import { faultsTolerated } from '../consensus/pbft/view-change.js'
import { NodeIdentity, verify } from '../base/ed25519.js'
import { KvStateMachine, type KvResult, type KvWrite, encodeWrite } from './kv-state-machine.js'
import { type Operation, type RegisterInput, checkHistory } from './linearizability.js'
import { BYZANTINE_BEHAVIOURS, type ByzantineBehaviour, ByzantineReplica } from './pbft-byzantine.js'
import { PbftCheckers, requestKey } from './pbft-checkers.js'
import { Prng } from './world/prng.js'
import { InvariantViolation } from './raft-checkers.js'
import { type NetworkOptions, SimNetwork } from './sim-network.js'

// Deterministic simulation of a federation's PBFT replicas (one per organisation) running the
// production core with real ed25519 signatures, in the style of raft-sim.ts: one seed draws every
// fault setting and up to f Byzantine organisations with behaviours; a safety phase runs client
// writes under network faults and replica restarts (a new Raft leader resuming from the org's
// persisted promises); a liveness phase heals everything and requires every client request to
// complete within a bound, while clients done with theirs keep one request each in flight (so the
// progress timer keeps restarting and cannot be what unmasks a primary censoring the others).
// Checkers run as batches commit; the client history must be linearizable.

export interface PbftSimOptions {
  seed: number
  ticks?: number
  /** PBFT_SIM_ORGS_MIN..PBFT_SIM_ORGS_MAX organisations; drawn from PBFT_SIM_ORGS_DRAWN when omitted. */
  orgs?: number
  trace?: boolean
  traceEventsMax?: number
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
  print?: (line: string) => void
}

export interface PbftSimConfig {
  orgs: number
  byzantine: Record<string, ByzantineBehaviour>
  clients: number
  keys: number
  network: NetworkOptions
  partitionPerMille: number
  restartPerMille: number
  opPerMille: number
  checkpointInterval: number
  logWindow: number
  batchMax: number
  requestTimeoutTicks: number
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

const CLIENT_RETRY_TICKS = 30
const LIVENESS_TICKS_MAX = 2500
const LIVENESS_OPS_PER_CLIENT = 2
const INBOX_MESSAGES_MAX = 4096
const SNAPSHOTS_KEPT = 4
const FETCH_TICKS = 3
/** A restarting replica's next leader usually resumes within this many ticks; one restart in LONG_RESTART_ONE_IN takes up to RESTART_LONG_TICKS_MAX. */
const RESTART_TICKS_MAX = 40
const RESTART_LONG_TICKS_MAX = 150
const LONG_RESTART_ONE_IN = 4
const LAGGARD_DOWN_TICK = 30
const LAGGARD_DOWN_TICKS = 60
export const PBFT_SIM_ORGS_MIN = 4
export const PBFT_SIM_ORGS_MAX = 10
/** Federation sizes a seed draws: n = 3f+1 and the sizes between, where quorums are not 2f+1. */
const PBFT_SIM_ORGS_DRAWN = [4, 4, 5, 6, 7, 8]

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
      delayTicksMin: 1,
      delayTicksMax: prng.intInclusive(1, 4),
      dropPerMille: prng.pick([0, 10, 50, 150]),
      duplicatePerMille: prng.pick([0, 10, 50]),
      packetsPerLinkMax: 1024
    },
    partitionPerMille: prng.pick([0, 5, 15]),
    restartPerMille: prng.pick([0, 2, 5]),
    opPerMille: prng.pick([50, 150, 300]),
    checkpointInterval,
    logWindow: checkpointInterval * prng.pick([2, 4]),
    batchMax: prng.pick([1, 4, 16]),
    requestTimeoutTicks: prng.pick([10, 20])
  }
}

interface Replica {
  id: string
  identity: NodeIdentity
  core: PbftCore
  byzantine?: ByzantineReplica
  kv: KvStateMachine
  up: boolean
  restartTick: number
  inbox: PbftMessage[]
  /** The org's Raft log: every promise, kept from the stable checkpoint on. */
  promises: PbftMessage[]
  stable?: StableCheckpoint
  snapshots: Map<number, Uint8Array>
  fetch?: { seq: number, stateDigest: Uint8Array, dueTick: number }
}

/** background: issued in the liveness phase beyond the client's own budget, as load while others finish. */
interface ClientOp { timestamp: number, key: string, input: RegisterInput, write: KvWrite, callTick: number, retryTick: number, collector: ReplyCollector, background: boolean }
interface Client { id: string, timestamp: number, op?: ClientOp, lastSeen: Map<string, string | null>, livenessOps: number }

/** The lagging-org scenario: the org, what the others had executed when it resumed, and when it got there. */
interface Laggard { id: string, target?: number, caughtUpTick?: number }

type TraceEvent = { tick: number, text?: string, to?: string, message?: PbftMessage }

export class PbftSimulation {
  readonly config: PbftSimConfig
  readonly stats: PbftSimStats = {
    ticks: 0, opsCompleted: 0, opsCompletedLiveness: 0, viewChanges: 0, viewMax: 0, restarts: 0, partitions: 0, stateTransfers: 0, evidence: 0, rejected: 0, dropped: 0,
    statusSent: 0, committedSent: 0, catchUps: 0
  }

  readonly #options: PbftSimOptions
  readonly #prng: Prng
  readonly #network: SimNetwork
  readonly #ids: string[]
  readonly #replicas: Replica[]
  readonly #byId = new Map<string, Replica>()
  readonly #clients: Client[]
  readonly #publicKeys = new Map<string, Uint8Array>()
  readonly #checkers: PbftCheckers
  readonly #history: Operation[] = []
  /** Requests whose result a client accepted, as requestKey(client, timestamp). */
  readonly #acknowledged: string[] = []
  readonly #trace: TraceEvent[] = []
  readonly #encoded = new WeakMap<PbftMessage, Uint8Array>()
  /** Valid signatures seen, by signature bytes: the key and message they sign. */
  readonly #verified = new Map<string, { key: Uint8Array, message: Uint8Array }>()
  #tick = 0
  #liveness = false
  #healTick = 0
  #laggard: Laggard | undefined

  constructor (options: PbftSimOptions) {
    this.#options = options
    this.#prng = new Prng(options.seed)
    const drawn = drawPbftConfig(this.#prng, options.orgs, options.behaviour)
    this.config = options.laggard === true ? laggardConfig(drawn) : drawn
    this.#network = new SimNetwork(this.#prng.fork(), this.config.network)
    this.#checkers = new PbftCheckers(new Set(Object.keys(this.config.byzantine)))
    const ids = Array.from({ length: this.config.orgs }, (_, i) => `org${i + 1}`)
    const clientIds = Array.from({ length: this.config.clients }, (_, i) => `c${i + 1}`)
    this.#ids = ids
    const identities = ids.map(() => new NodeIdentity(this.#prng.bytes(32)))
    ids.forEach((id, i) => this.#publicKeys.set(id, identities[i]!.publicKey))
    this.#replicas = ids.map((id, i) => {
      const behaviour = this.config.byzantine[id]
      const r: Replica = {
        id,
        identity: identities[i]!,
        core: undefined as unknown as PbftCore,
        kv: new KvStateMachine(this.config.clients),
        up: true,
        restartTick: 0,
        inbox: [],
        promises: [],
        snapshots: new Map([[0, new KvStateMachine(this.config.clients).snapshot()]])
      }
      if (behaviour !== undefined) r.byzantine = new ByzantineReplica(id, behaviour, ids, identities[i]!, this.#prng.fork(), clientIds)
      r.core = this.#newCore(r)
      this.#byId.set(id, r)
      return r
    })
    this.#clients = clientIds.map((id) => ({ id, timestamp: 0, lastSeen: new Map(), livenessOps: 0 }))
    // Any backup of view 0 (the primary's own loss would rightly cause a view change).
    if (options.laggard === true) this.#laggard = { id: this.#prng.pick(ids.slice(1)) }
  }

  async run (): Promise<PbftSimResult> {
    let violation: PbftSimResult['violation']
    let linearizability: PbftSimResult['linearizability'] = 'ok'
    try {
      const b = Object.entries(this.config.byzantine).map(([id, behaviour]) => `${id}=${behaviour}`)
      this.#event({ tick: 0, text: `${this.config.orgs} orgs, faulty: ${b.join(' ') || 'none'}` })
      const ticks = this.#options.ticks ?? 400
      for (; this.#tick < ticks; this.#tick++) this.#step()
      this.#checkLaggardCaughtUp()
      this.#livenessPhase()
      const verdict = checkHistory(this.#history)
      linearizability = verdict.result
      if (verdict.result === 'illegal') throw new InvariantViolation('linearizability', `history of key ${verdict.key} (${verdict.operations.length} ops) has no linearization`)
    } catch (err) {
      const invariant = err instanceof InvariantViolation ? err.invariant : (err as Error).name === 'AssertionError' ? 'core assertion' : 'crash'
      violation = { invariant, message: err instanceof InvariantViolation ? err.detail : `${(err as Error).message}\n${(err as Error).stack ?? ''}` }
    }
    this.stats.ticks = this.#tick
    this.stats.partitions = this.#network.stats.partitions
    this.stats.dropped = this.#network.stats.dropped
    this.stats.evidence = this.#checkers.evidence
    for (const r of this.#replicas) {
      const s = r.core.status()
      this.stats.viewMax = Math.max(this.stats.viewMax, s.view)
      this.stats.viewChanges += s.viewChanges
      this.stats.rejected += Object.values(s.rejected).reduce((a, b) => a + b, 0)
      if (r.byzantine === undefined) this.stats.catchUps += s.caughtUp
    }
    const result: PbftSimResult = { seed: this.#options.seed, ok: violation === undefined, trace: this.#formatTrace(), stats: this.stats, config: this.config, linearizability }
    if (violation !== undefined) result.violation = violation
    return result
  }

  // ---- phases ----

  #step (): void {
    if (!this.#liveness) this.#injectFaults()
    if (this.#laggard !== undefined) this.#watchLaggard(this.#laggard)
    for (const r of this.#replicas) if (!r.up && this.#tick >= r.restartTick) this.#restart(r)
    for (const p of this.#network.deliver(this.#tick)) this.#deliver(p.from, p.to, p.bytes)
    for (const r of this.#replicas) if (r.up) this.#replicaTick(r)
    for (const c of this.#clients) this.#clientTick(c)
  }

  #livenessPhase (): void {
    this.#liveness = true
    this.#network.heal()
    this.#network.options = { ...this.#network.options, dropPerMille: 0 }
    for (const r of this.#replicas) if (!r.up) r.restartTick = this.#tick
    this.#event({ tick: this.#tick, text: 'liveness phase: network healed, restarting replicas resume' })
    const livenessTicksMax = this.#options.livenessTicksMax ?? LIVENESS_TICKS_MAX
    const deadline = this.#tick + livenessTicksMax
    for (; this.#tick < deadline; this.#tick++) {
      this.#step()
      if (this.#clients.every((c) => c.op === undefined) && !this.#livenessStraggling()) {
        this.#checkAcknowledgedExecuted()
        return
      }
    }
    const pending = this.#clients.filter((c) => c.op !== undefined).map((c) => `${c.id}#${c.op!.timestamp}`)
    const views = this.#replicas.map((r) => `${r.id}:v${r.core.status().view}${r.core.status().active ? '' : '?'}@${r.core.status().lastExecuted}`)
    throw new InvariantViolation('liveness', `client requests still pending after ${livenessTicksMax} healed ticks: ${pending.join(', ') || 'none issued'} (${views.join(' ')})`)
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
    const r = this.#byId.get(l.id)!
    if (this.#tick === LAGGARD_DOWN_TICK) {
      r.up = false
      r.inbox = []
      r.restartTick = this.#tick + LAGGARD_DOWN_TICKS
      this.#event({ tick: this.#tick, text: `${r.id}'s Raft leader crashes (the lagging-org scenario); the next leader resumes at ${r.restartTick}` })
    } else if (this.#tick === LAGGARD_DOWN_TICK + LAGGARD_DOWN_TICKS) {
      l.target = Math.max(...this.#replicas.filter((o) => o !== r).map((o) => o.core.status().lastExecuted))
    } else if (l.target !== undefined && l.caughtUpTick === undefined && r.core.status().lastExecuted >= l.target) {
      l.caughtUpTick = this.#tick
      this.#event({ tick: this.#tick, text: `${r.id} caught up to seq ${l.target} (${r.core.status().caughtUp} batches from commit certificates)` })
    }
  }

  /** The lagging org caught up within two request timeouts of resuming, and no replica ever suspected a primary. */
  #checkLaggardCaughtUp (): void {
    const l = this.#laggard
    if (l === undefined) return
    const resumedTick = LAGGARD_DOWN_TICK + LAGGARD_DOWN_TICKS
    const boundTicks = 2 * this.config.requestTimeoutTicks
    const views = this.#replicas.map((r) => `${r.id}:v${r.core.status().view}@${r.core.status().lastExecuted}`).join(' ')
    if (l.caughtUpTick === undefined || l.caughtUpTick - resumedTick > boundTicks) {
      throw new InvariantViolation('catch-up', `${l.id} resumed at ${resumedTick} behind seq ${l.target ?? '?'} and had not caught up ${boundTicks} ticks later (${views})`)
    }
    const changes = this.#replicas.reduce((n, r) => n + r.core.status().viewChanges, 0)
    if (changes > 0) throw new InvariantViolation('catch-up', `${changes} view changes while ${l.id} caught up (${views})`)
  }

  #injectFaults (): void {
    const c = this.config
    if (this.#network.partitioned && this.#tick >= this.#healTick) {
      this.#network.heal()
      this.#event({ tick: this.#tick, text: 'network healed' })
    } else if (!this.#network.partitioned && this.#prng.chance(c.partitionPerMille, 1000)) {
      const shuffled = this.#prng.shuffle(this.#replicas.map((r) => r.id))
      const cut = this.#prng.intInclusive(1, shuffled.length - 1)
      const oneWay = this.#prng.chance(1, 3)
      this.#network.partition(shuffled.slice(0, cut), shuffled.slice(cut), oneWay)
      this.#healTick = this.#tick + this.#prng.intInclusive(10, 80)
      this.#event({ tick: this.#tick, text: `partition ${shuffled.slice(0, cut).join(',')} ${oneWay ? '->' : '|'} ${shuffled.slice(cut).join(',')}` })
    }
    const honestUp = this.#replicas.filter((r) => r.up && r.byzantine === undefined)
    if (honestUp.length > 0 && this.#prng.chance(c.restartPerMille, 1000)) {
      const victim = this.#prng.pick(honestUp)
      victim.up = false
      victim.inbox = []
      // Now and then the org stays leaderless long enough to fall dozens of batches behind.
      victim.restartTick = this.#tick + this.#prng.intInclusive(1, this.#prng.chance(1, LONG_RESTART_ONE_IN) ? RESTART_LONG_TICKS_MAX : RESTART_TICKS_MAX)
      this.stats.restarts++
      this.#event({ tick: this.#tick, text: `${victim.id}'s Raft leader crashes; the next leader resumes at ${victim.restartTick}` })
    }
  }

  // ---- replicas ----

  #newCore (r: Replica, restore?: PbftConfig['restore']): PbftCore {
    return new PbftCore({
      id: r.id,
      replicas: this.#ids,
      publicKeys: this.#publicKeys,
      signer: r.identity,
      verify: (key, message, signature) => this.#verify(key, message, signature),
      checkpointInterval: this.config.checkpointInterval,
      logWindow: this.config.logWindow,
      batchMax: this.config.batchMax,
      requestTimeoutTicks: this.config.requestTimeoutTicks,
      // The node runs with it on: odd seeds do too (not drawn, so every seed's other draws stay as they were).
      proposeWhenIdle: this.#options.seed % 2 === 1,
      ...(this.#options.unsafe === undefined ? {} : { unsafe: this.#options.unsafe }),
      ...(restore === undefined ? {} : { restore })
    })
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

  #restart (r: Replica): void {
    // The org's next Raft leader: the application state and the promises survive in the org's log.
    r.core = this.#newCore(r, { promises: r.promises, executedSeq: this.#checkers.executedTo(r.id), ...(r.stable === undefined ? {} : { stable: r.stable }) })
    r.up = true
    delete r.fetch
    this.#event({ tick: this.#tick, text: `${r.id} resumes (view ${r.core.status().view}${r.core.status().active ? '' : ' changing'}, executed ${r.core.status().lastExecuted})` })
  }

  #deliver (from: string, to: string, bytes: Uint8Array): void {
    let m: PbftMessage
    try {
      m = decodePbftMessage(bytes)
    } catch (err) {
      if (!(err instanceof PbftDecodeError)) throw err
      this.#event({ tick: this.#tick, text: `${from}->${to} undecodable (${err.code})` })
      return
    }
    const client = this.#clients.find((c) => c.id === to)
    if (client !== undefined) {
      this.#clientReply(client, m)
      return
    }
    const r = this.#byId.get(to)!
    if (!r.up || r.inbox.length >= INBOX_MESSAGES_MAX) return
    this.#event({ tick: this.#tick, to, message: m })
    r.inbox.push(m)
  }

  #replicaTick (r: Replica): void {
    for (const m of r.inbox) if (r.byzantine?.inbound(m) !== false) r.core.step(m)
    r.inbox = []
    r.core.tick()
    if (r.fetch !== undefined && this.#tick >= r.fetch.dueTick) this.#completeFetch(r)
    for (let round = 0; round < 4 && r.core.hasReady(); round++) this.#processReady(r, r.core.ready())
  }

  /** The Ready contract: promises into the org's log, then send, then apply, then advance. */
  #processReady (r: Replica, rd: PbftReady): void {
    const before = r.core.status().view
    r.promises.push(...rd.promises)
    if (rd.stable !== undefined) this.#truncatePromises(r, rd.stable)
    for (const { to, message } of rd.messages) this.#send(r, to, message)
    for (const b of rd.committed) {
      if (r.byzantine === undefined) this.#checkers.recordCommitted(r.id, b)
      const results = b.requests.map((req) => {
        const write = decodeKvWrite(req.op)
        if (write === undefined) return undefined
        const result = r.kv.apply({ term: b.view, index: b.seq, type: 'normal', data: req.op, requestId: { client: req.client, seq: req.timestamp } })
        return result === undefined ? undefined : encode(result)
      })
      const atCheckpoint = b.seq % this.config.checkpointInterval === 0
      const snapshot = atCheckpoint ? r.kv.snapshot() : undefined
      if (snapshot !== undefined) {
        r.snapshots.set(b.seq, snapshot)
        for (const seq of [...r.snapshots.keys()]) if (r.snapshots.size > SNAPSHOTS_KEPT && seq < b.seq) r.snapshots.delete(seq)
        if (r.byzantine === undefined) this.#checkers.recordState(r.id, b.seq, sha256(snapshot))
      }
      r.core.applied(b.seq, results, snapshot === undefined ? undefined : sha256(snapshot))
    }
    if (rd.fetchState !== undefined) {
      r.fetch = { ...rd.fetchState, dueTick: this.#tick + FETCH_TICKS }
      this.#event({ tick: this.#tick, text: `${r.id} is behind stable checkpoint ${rd.fetchState.seq}: fetching the state` })
    }
    for (const e of rd.evidence) {
      this.#event({ tick: this.#tick, text: `${r.id} has evidence against ${e.replica}: ${describe(e.first)} vs ${describe(e.second)}` })
    }
    for (const e of rd.evidence) {
      this.#checkers.recordEvidence(r.id, e)
    }
    r.core.advance(rd)
    const s = r.core.status()
    if (s.view !== before) this.#event({ tick: this.#tick, text: `${r.id} ${s.active ? 'enters' : 'votes for'} view ${s.view} (primary ${s.primary})` })
  }

  /** State transfer: any replica's snapshot with the proven digest will do (the digest is the proof). */
  #completeFetch (r: Replica): void {
    const { seq, stateDigest } = r.fetch!
    for (const donor of this.#prng.shuffle(this.#replicas.filter((d) => d !== r && d.up))) {
      const snapshot = donor.snapshots.get(seq)
      if (snapshot === undefined || Buffer.compare(sha256(snapshot), stateDigest) !== 0) continue
      delete r.fetch
      if (!r.core.stateInstalled(seq, stateDigest)) return // a later checkpoint is stable: the next Ready asks for it
      r.kv = new KvStateMachine(this.config.clients, snapshot)
      r.snapshots.set(seq, snapshot)
      if (r.byzantine === undefined) this.#checkers.recordStateInstalled(r.id, seq, stateDigest)
      this.stats.stateTransfers++
      this.#event({ tick: this.#tick, text: `${r.id} installs the state of checkpoint ${seq} from ${donor.id}` })
      return
    }
    r.fetch!.dueTick = this.#tick + FETCH_TICKS
  }

  /** Promises below the stable checkpoint are no longer needed; keep the latest view change and new view. */
  #truncatePromises (r: Replica, stable: StableCheckpoint): void {
    r.stable = stable
    const lastOf = (type: string): PbftMessage | undefined => [...r.promises].reverse().find((m) => m.body.type === type)
    const keep = new Set([lastOf('ViewChange'), lastOf('NewView')])
    r.promises = r.promises.filter((m) => keep.has(m) || ('seq' in m.body && m.body.seq > stable.seq))
  }

  #send (r: Replica, to: string, m: PbftMessage): void {
    if (r.byzantine === undefined && m.body.type === 'Status') this.stats.statusSent++
    if (r.byzantine === undefined && m.body.type === 'Committed') this.stats.committedSent++
    const out = r.byzantine === undefined ? [m] : r.byzantine.outbound(to, m)
    for (const x of out) {
      if (x instanceof Uint8Array) {
        this.#network.send(r.id, to, x, this.#tick)
        continue
      }
      let bytes = this.#encoded.get(x)
      if (bytes === undefined) {
        bytes = encodePbftMessage(x)
        this.#encoded.set(x, bytes)
      }
      this.#network.send(r.id, to, bytes, this.#tick)
    }
  }

  // ---- clients ----

  #clientTick (c: Client): void {
    if (c.op === undefined) {
      const background = this.#liveness && c.livenessOps >= LIVENESS_OPS_PER_CLIENT
      if (background ? !this.#livenessStraggling() : !this.#prng.chance(this.config.opPerMille, 1000)) return
      if (this.#liveness && !background) c.livenessOps++
      c.op = this.#newOp(c, background)
      this.#event({ tick: this.#tick, text: `${c.id}#${c.op.timestamp} invokes ${JSON.stringify(c.op.input)} on ${c.op.key}` })
    }
    const op = c.op
    if (this.#tick < op.retryTick) return
    // First to one organisation's replica; on a retry, to all of them (PBFT's client rule).
    const targets = op.retryTick === op.callTick ? [this.#prng.pick(this.#replicas)] : this.#replicas
    for (const r of targets) {
      if (r.up && r.byzantine?.acceptsClient(c.id) !== false) r.core.propose(encodeWrite(op.write), { client: c.id, seq: op.timestamp })
    }
    op.retryTick = this.#tick + CLIENT_RETRY_TICKS
  }

  #newOp (c: Client, background: boolean): ClientOp {
    const timestamp = ++c.timestamp
    const key = `k${this.#prng.intInclusive(1, this.config.keys)}`
    const value = `${c.id}.${timestamp}`
    const collector = new ReplyCollector(c.id, timestamp, faultsTolerated(this.config.orgs), this.#publicKeys, (k, m, s) => this.#verify(k, m, s))
    const base = { timestamp, key, callTick: this.#tick, retryTick: this.#tick, collector, background }
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
    this.#history.push({ client: c.id, key: op.key, callTick: op.callTick, returnTick: this.#tick, input: op.input, output })
    this.#acknowledged.push(requestKey(c.id, op.timestamp))
    if (op.write.kind === 'put' || output === true) c.lastSeen.set(op.key, op.write.kind === 'put' ? op.write.value : op.write.to)
    this.stats.opsCompleted++
    if (this.#liveness) this.stats.opsCompletedLiveness++
    this.#event({ tick: this.#tick, text: `${c.id}#${op.timestamp} returns ${JSON.stringify(output)}` })
    delete c.op
  }

  // ---- tracing ----

  #event (e: TraceEvent): void {
    if (this.#options.trace === true) {
      (this.#options.print ?? console.log)(formatEvent(e))
      return
    }
    this.#trace.push(e)
    const max = this.#options.traceEventsMax ?? 60
    if (this.#trace.length > 2 * max) this.#trace.splice(0, this.#trace.length - max)
  }

  #formatTrace (): string[] {
    return this.#trace.slice(-(this.#options.traceEventsMax ?? 60)).map(formatEvent)
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
  if (e.text !== undefined) return `t=${e.tick} ${e.text}`
  return `t=${e.tick} ${e.message!.from}->${e.to} ${describe(e.message!)}`
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

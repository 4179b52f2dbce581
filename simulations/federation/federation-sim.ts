import { NodeIdentity } from '../../base/ed25519.js'
import { type Logger, silentLogger } from '../../base/log.js'
import { pino } from 'pino'
import { faultsTolerated } from '../../consensus/pbft/index.js'
import { createGenesis } from '../../node/federation/genesis.js'
import { encodeCertificate, issueCertificate } from '../../base/org-certificate.js'
import { LIST_LIMIT_MAX } from '../../node/org/task-service.js'
import type { Task } from '../../node/org/task-board.js'
import { createSanitizer } from '../../sanitize/index.js'
import { SimNetwork } from '../world/network.js'
import { Prng } from '../world/prng.js'
import { SIM_EPOCH_MS, SimScheduler } from '../world/scheduler.js'
import { type SimPacket, SimTopics } from '../world/sim-transport.js'
import { FederationViolation, RaftLeaders, SlotSignatures, federatedCopy } from './checkers.js'
import { ByzantineOrg } from './byzantine-org.js'
import { ORGS_MAX, ORG_NAMES } from './scenario-file.js'
import { type ByzantineKind, type FaultStep, type FederationSimReport, type Scenario, type SeriesPoint, type SimEvent, BYZANTINE_KINDS } from './scenario.js'
import { type SimOrg, SimFedNode, type SimWorld } from './sim-node.js'

// Deterministic chaos simulation of a whole federation: O orgs × N nodes, every node running the
// production org and federation code (sim-node.ts) over one simulated world. One seed draws every
// setting and fault not fixed by the scenario. A safety phase runs a stream of cross-org tasks
// under the scenario's faults; a liveness phase heals the network, restarts every crashed node and
// requires every pending proposal to complete and every acknowledged task to reach every honest
// board. Invariants are checked as the run goes and at its end; the first violation ends the run,
// and the seed replays it exactly.

const BUCKET_MS = 500
const TRACE_LINES_MAX = 400
const PROPOSE_TIMEOUT_MS = 30_000
/** A crashed node comes back after this long unless the scenario restarts it. */
const RESTART_AFTER_MS: readonly [number, number] = [300, 4000]
const CLOCK_SKEW_MS_MAX = 8_000
const RAFT = { tickMs: 50, electionTicks: 10, heartbeatTicks: 1, requestTimeoutMs: 5_000, snapshotEntries: 200, compactionRetainEntries: 50 }

export interface RunOptions {
  trace?: boolean
  print?: (line: string) => void
  /** Called with the simulated time every simulated second. */
  onProgress?: (tMs: number) => void
  /** The caller's real clock, read only for the report's wall time (the simulation itself never reads real time). */
  wallClockMs?: () => number
}

interface Proposal { n: number, node: SimFedNode, startMs: number, status: 'pending' | 'acked' | 'failed' | 'lost', ref?: string, reason?: string }

/** Swarm mode: every setting the scenario leaves open, drawn from its seed. */
export function randomScenario (seed: number, fixed: Partial<Scenario> = {}): Scenario {
  const prng = new Prng(seed ^ 0x5eed)
  const orgs = fixed.orgs ?? prng.pick([4, 4, 4, 5, 7])
  const f = faultsTolerated(orgs)
  const names = ORG_NAMES.slice(0, orgs)
  const byzantine: Scenario['byzantine'] = {}
  if (fixed.byzantine === undefined && prng.chance(1, 2)) {
    for (const name of prng.shuffle([...names]).slice(0, prng.intInclusive(1, f))) byzantine[name] = prng.pick(BYZANTINE_KINDS)
  }
  const interMin = prng.intInclusive(1, 20)
  return {
    seed,
    orgs,
    nodesPerOrg: fixed.nodesPerOrg ?? prng.pick([1, 3, 3, 3, 5]),
    durationMs: prng.pick([3_000, 5_000, 8_000]),
    livenessMsMax: 30_000,
    workload: { tasksPerSecond: prng.pick([5, 10, 20]), concurrency: prng.pick([2, 4, 8]) },
    network: { intraOrgMs: [1, prng.intInclusive(1, 3)], interOrgMs: [interMin, interMin + prng.intInclusive(0, 30)], dropPerMille: prng.pick([0, 5, 20, 50]), duplicatePerMille: prng.pick([0, 5, 20]) },
    faults: 'random',
    byzantine: fixed.byzantine ?? byzantine,
    diskMs: [0, prng.pick([1, 2, 5])],
    ...fixed
  }
}

export async function runFederationSim (scenario: Scenario, options: RunOptions = {}): Promise<FederationSimReport> {
  return await new FederationRun(scenario, options).run()
}

class FederationRun {
  readonly #scenario: Scenario
  readonly #options: RunOptions
  readonly #prng: Prng
  readonly #scheduler = new SimScheduler()
  readonly #orgs: SimOrg[] = []
  readonly #orgOf = new Map<string, SimOrg>()
  readonly #net: SimNetwork<SimPacket>
  readonly #world: SimWorld
  readonly #proposals: Proposal[] = []
  readonly #events: SimEvent[] = []
  readonly #series: SeriesPoint[] = []
  readonly #trace: string[] = []
  readonly #slots = new SlotSignatures()
  readonly #leaders = new RaftLeaders()
  readonly #byzantineOrgs = new Map<string, ByzantineOrg>()
  /** Revoked orgs, with the number of proposals made before their revocation passed. */
  readonly #revoked = new Map<string, number>()
  /** Orgs voted in mid-run, with the first epoch they order in. */
  readonly #admitted = new Map<string, number>()
  /** Draws for governance, apart from #prng so that adding them left every other draw of a seed as it was. */
  readonly #governance: Prng
  readonly #stats = { crashes: 0, partitions: 0, viewChanges: 0 }
  #latencies: number[] = []
  #ackedInBucket = 0
  #viewMax = 0
  #voted = false
  #violation: FederationViolation | undefined

  constructor (scenario: Scenario, options: RunOptions) {
    this.#scenario = scenario
    this.#options = options
    this.#prng = new Prng(scenario.seed)
    this.#governance = new Prng(scenario.seed ^ 0x6a09e667)
    const { network } = scenario
    this.#net = new SimNetwork<SimPacket>(this.#scheduler, this.#prng.fork(), (from, to) => ({
      latencyMs: this.#orgOf.get(from) === this.#orgOf.get(to) ? network.intraOrgMs : network.interOrgMs,
      dropPerMille: network.dropPerMille,
      duplicatePerMille: network.duplicatePerMille
    }))
    const roots = ORG_NAMES.slice(0, scenario.orgs).map(() => new NodeIdentity(this.#prng.bytes(32)))
    const genesis = createGenesis(roots[0]!, roots.map((r, i) => ({ name: ORG_NAMES[i]!, root: r.publicKeyHex })), SIM_EPOCH_MS - 60_000, {
      checkpointInterval: this.#prng.pick([4, 8, 16]), viewChangeTimeoutMs: this.#prng.pick([1000, 2000])
    })
    this.#world = {
      scheduler: this.#scheduler, net: this.#net, topics: new SimTopics(), genesis, sanitizer: createSanitizer({ salt: this.#prng.bytes(32) }),
      diskMs: scenario.diskMs, raft: RAFT, federation: { tickMs: 50, anchorIntervalMs: 2_000 },
      loggerOf: (node) => options.trace === true ? traceLogger((line) => this.#line(`${node} ${line}`)) : silentLogger
    }
    roots.forEach((root, i) => this.#addOrg(ORG_NAMES[i]!, root, this.#prng, 'genesis'))
  }

  /** An org of the scenario's size, its node keys and certificates drawn from prng. */
  #addOrg (name: string, root: NodeIdentity, prng: Prng, federation: SimOrg['federation']): SimOrg {
    const org: SimOrg = { name, root, nodes: [], federation }
    for (let n = 0; n < this.#scenario.nodesPerOrg; n++) {
      const identity = new NodeIdentity(prng.bytes(32))
      const certificate = encodeCertificate(issueCertificate(root, { org: org.name, node: identity.publicKey, issuedAtMs: SIM_EPOCH_MS - 60_000, ttlMs: 365 * 24 * 3600_000 }))
      const node: SimFedNode = new SimFedNode(this.#world, org, n, identity, certificate, prng.fork(), this.#outbound(org, () => node))
      org.nodes.push(node)
      this.#orgOf.set(node.key, org)
    }
    this.#orgs.push(org)
    return org
  }

  async run (): Promise<FederationSimReport> {
    const startedMs = this.#options.wallClockMs?.() ?? 0
    const s = this.#scenario
    try {
      // Boots run on simulated time (their disk writes take some), so they proceed as the run does.
      for (const node of this.#nodes()) void node.boot()
      this.#schedule()
      for (let t = 0; t < s.durationMs && this.#violation === undefined; t += BUCKET_MS) {
        await this.#scheduler.runUntil(t + BUCKET_MS)
        this.#check()
        await this.#sample(t + BUCKET_MS)
      }
      if (this.#violation === undefined) await this.#liveness()
      if (this.#violation === undefined) await this.#finalChecks()
    } catch (err) {
      if (err instanceof FederationViolation) this.#violation ??= err
      else this.#violation ??= new FederationViolation('crash', (err as Error).stack ?? String(err))
    }
    if (this.#violation !== undefined) this.#event('violation', `${this.#violation.invariant}: ${this.#violation.message}`)
    const acked = this.#proposals.filter((p) => p.status === 'acked').length
    return {
      seed: s.seed,
      ok: this.#violation === undefined,
      ...(this.#violation !== undefined ? { violation: { invariant: this.#violation.invariant, message: this.#violation.message } } : {}),
      scenario: s,
      stats: {
        simulatedMs: this.#scheduler.nowMs,
        wallMs: Math.round((this.#options.wallClockMs?.() ?? 0) - startedMs),
        proposed: this.#proposals.length,
        acknowledged: acked,
        viewChanges: this.#stats.viewChanges,
        leaderChanges: this.#leaders.changes,
        crashes: this.#stats.crashes,
        partitions: this.#stats.partitions,
        messages: this.#net.stats.sent,
        dropped: this.#net.stats.dropped
      },
      bucketMs: BUCKET_MS,
      series: this.#series,
      events: this.#events,
      trace: this.#trace
    }
  }

  // ---- the world's inputs: workload and faults ----

  #schedule (): void {
    const s = this.#scenario
    const clock = this.#scheduler.clock()
    const intervalMs = Math.max(1, Math.round(1000 / s.workload.tasksPerSecond))
    const stopWorkload = clock.every(intervalMs, () => {
      if (this.#scheduler.nowMs >= s.durationMs) return stopWorkload()
      this.#propose()
    })
    const steps = s.faults === 'random' ? this.#randomFaults() : s.faults
    for (const step of steps) this.#scheduler.at(step.atMs, clock, () => { this.#fault(step).catch((err: Error) => { this.#violation ??= new FederationViolation('crash', err.stack ?? err.message) }) })
  }

  #randomFaults (): FaultStep[] {
    const s = this.#scenario
    const kinds: FaultStep['kind'][] = ['partition-org', 'partition-orgs', 'partition-one-way', 'isolate-primary-host', 'crash', 'crash', 'kill-leader', 'kill-leader', 'clock-skew', 'heal']
    // From 5 orgs on, a revocation vote now and then (at most one a run; at least 4 members remain).
    if (s.orgs >= 5) kinds.push('vote-revoke')
    const steps: FaultStep[] = []
    const count = this.#prng.intInclusive(Math.ceil(s.durationMs / 2000), Math.ceil(s.durationMs / 500))
    for (let i = 0; i < count; i++) {
      steps.push({ atMs: this.#prng.intInclusive(500, s.durationMs - 1), kind: this.#prng.pick(kinds), ms: this.#prng.intInclusive(300, 3000) })
    }
    // One run in four, an org founded mid-run asks to be admitted.
    if (s.orgs < ORGS_MAX && this.#governance.chance(1, 4)) steps.push({ atMs: this.#governance.intInclusive(500, s.durationMs - 1), kind: 'vote-admit' })
    return steps.sort((a, b) => a.atMs - b.atMs)
  }

  #propose (): void {
    const s = this.#scenario
    const pending = this.#proposals.filter((p) => p.status === 'pending').length
    if (pending >= s.workload.concurrency * this.#honestOrgs().length) return
    const candidates = this.#honestOrgs().flatMap((o) => o.nodes).filter((n) => n.up && n.federation !== undefined)
    if (candidates.length === 0) return
    this.#proposeFrom(this.#prng.pick(candidates))
  }

  async #fault (step: FaultStep): Promise<void> {
    if (this.#violation !== undefined || this.#scheduler.nowMs >= this.#scenario.durationMs) return
    const node = step.target !== undefined && step.target.includes('/') ? this.#nodes().find((n) => n.name === step.target) : undefined
    const org = step.target !== undefined ? this.#orgs.find((o) => o.name === step.target) : undefined
    const healAfter = (): void => { this.#scheduler.at(this.#scheduler.nowMs + (step.ms ?? 1000), this.#scheduler.clock(), () => this.#heal('partition over')) }
    switch (step.kind) {
      case 'partition-org': {
        const splittable = this.#orgs.filter((o) => o.nodes.length > 1)
        const victim = org ?? (splittable.length > 0 ? this.#prng.pick(splittable) : undefined)
        if (victim === undefined || victim.nodes.length < 2) return
        const nodes = this.#prng.shuffle([...victim.nodes])
        const cut = this.#prng.intInclusive(1, nodes.length - 1)
        this.#partition('partition-org', nodes.slice(0, cut).map((n) => n.key), nodes.slice(cut).map((n) => n.key), false, `org ${victim.name} split ${cut}|${nodes.length - cut}`)
        return healAfter()
      }
      case 'partition-orgs':
      case 'partition-one-way': {
        const orgs = this.#prng.shuffle([...this.#orgs])
        const cut = this.#prng.intInclusive(1, orgs.length - 1)
        const keys = (os: SimOrg[]): string[] => os.flatMap((o) => o.nodes.map((n) => n.key))
        const oneWay = step.kind === 'partition-one-way'
        this.#partition(step.kind, keys(orgs.slice(0, cut)), keys(orgs.slice(cut)), oneWay, `orgs ${orgs.slice(0, cut).map((o) => o.name).join(',')} ${oneWay ? '↛' : '|'} ${orgs.slice(cut).map((o) => o.name).join(',')}`)
        return healAfter()
      }
      case 'isolate-primary-host': {
        const host = this.#primaryHost()
        if (host === undefined) return
        this.#partition(step.kind, [host.key], this.#nodes().filter((n) => n !== host).map((n) => n.key), false, `primary's host ${host.name} isolated`)
        return healAfter()
      }
      case 'crash':
      case 'kill-leader': {
        const victim = node ?? (step.kind === 'kill-leader'
          ? this.#leaderOf(org ?? this.#prng.pick(this.#orgs))
          : this.#pickUp())
        if (victim === undefined || !victim.up) return
        this.#crash(victim, step.kind)
        if (this.#scenario.faults === 'random') this.#scheduler.at(this.#scheduler.nowMs + this.#prng.intInclusive(...RESTART_AFTER_MS), this.#scheduler.clock(), () => { void this.#restart(victim) })
        return
      }
      case 'restart': {
        const victim = node ?? this.#nodes().find((n) => !n.up)
        if (victim !== undefined) await this.#restart(victim)
        return
      }
      case 'clock-skew': {
        const victim = node ?? this.#prng.pick(this.#nodes())
        victim.clock.skewMs = step.ms !== undefined && step.target !== undefined ? step.ms : this.#prng.intInclusive(-CLOCK_SKEW_MS_MAX, CLOCK_SKEW_MS_MAX)
        this.#event('clock-skew', `${victim.name} wall clock off by ${victim.clock.skewMs} ms`, victim)
        return
      }
      case 'heal':
        return this.#heal('heal')
      case 'vote-revoke':
        return this.#voteRevoke(org)
      case 'vote-admit':
        return this.#voteAdmit()
    }
  }

  /**
   * An org founded now, outside the federation, asks to join: every honest member votes to admit
   * it. Once a member's state shows the vote passed, that member exports the new epoch (its config
   * and the state it began with) and the org's nodes join from that file, as `fedmesh federation
   * export` / `join` do; from that epoch on its boards must hold every acknowledged task.
   */
  #voteAdmit (): void {
    if (this.#voted || this.#orgs.length >= ORGS_MAX) return
    this.#voted = true
    const candidate = this.#addOrg(ORG_NAMES[this.#orgs.length]!, new NodeIdentity(this.#governance.bytes(32)), this.#governance, undefined)
    for (const node of candidate.nodes) void node.boot()
    this.#event('vote-admit', `${candidate.name} founded outside the federation; every member votes to admit it`)
    for (const voter of this.#honestOrgs()) {
      const node = voter.nodes.find((n) => n.up && n.federation !== undefined)
      // The receipt may never come back (its node killed): the members' states say when it passed.
      void node?.federation!.vote({ action: 'admit', name: candidate.name, root: candidate.root.publicKeyHex }, { timeoutMs: PROPOSE_TIMEOUT_MS }).catch(() => undefined)
    }
  }

  /**
   * Votes as the members' applied states record them (not as receipts say: a receipt may be lost):
   * a revoked org's boards are no longer the federation's, and its pending proposals end refused or
   * timed out; an admitted org joins from the first member node that exports its epoch with the
   * state it began with.
   */
  #followVotes (): void {
    for (const node of this.#honestNodes()) {
      for (const change of node.federation?.state?.changes ?? []) {
        const org = this.#orgs.find((o) => o.root.publicKeyHex === change.org.root)
        if (org === undefined) continue
        if (change.action === 'revoke' && !this.#revoked.has(org.name)) {
          this.#revoked.set(org.name, this.#proposals.length)
          for (const p of this.#proposals) if (p.status === 'pending' && p.node.org === org) p.status = 'lost'
          this.#event('epoch', `${org.name} revoked at ${change.epoch - 1}.${change.seq}: epoch ${change.epoch} orders without it`)
        } else if (change.action === 'admit' && !this.#admitted.has(org.name)) {
          this.#admitted.set(org.name, change.epoch)
          this.#event('epoch', `${org.name} admitted at ${change.epoch - 1}.${change.seq}: epoch ${change.epoch} orders with it`)
        }
      }
    }
    for (const org of this.#orgs.filter((o) => o.federation === undefined)) {
      const epoch = this.#admitted.get(org.name)
      const exporter = epoch === undefined ? undefined : this.#honestNodes().find((n) => n.federation?.epochFile().epoch === epoch && n.federation.epochFile().core !== undefined)
      if (exporter === undefined) continue
      const file = exporter.federation!.epochFile()
      org.federation = { config: { genesis: file.genesis, epoch: file.epoch, orgs: file.orgs }, epochCore: new Uint8Array(Buffer.from(file.core!, 'base64')) }
      for (const node of org.nodes) node.joinFederation()
      this.#event('epoch', `${org.name} joins epoch ${epoch} from ${exporter.name}'s export`)
    }
  }

  /**
   * Every other member org votes to revoke one (a Byzantine org if there is one): once the vote
   * passes, a new epoch orders tasks without it, and from then on its boards are not the
   * federation's (it is not checked for tasks acknowledged later).
   */
  #voteRevoke (target: SimOrg | undefined): void {
    const members = this.#orgs.filter((o) => o.federation !== undefined && !this.#revoked.has(o.name))
    // One revocation a run, and at least 4 members after it (a federation that still tolerates a Byzantine org).
    if (this.#voted || members.length - 1 < 4) return
    this.#voted = true
    const victim = target ?? members.find((o) => this.#scenario.byzantine[o.name] !== undefined) ?? this.#prng.pick(members)
    this.#event('vote-revoke', `every other member votes to revoke ${victim.name}`)
    for (const voter of members.filter((o) => o !== victim && this.#scenario.byzantine[o.name] === undefined)) {
      const node = voter.nodes.find((n) => n.up && n.federation !== undefined)
      // The receipt may never come back (its node killed): the members' states say when it passed (#followVotes).
      void node?.federation!.vote({ action: 'revoke', org: victim.name }, { timeoutMs: PROPOSE_TIMEOUT_MS }).catch(() => undefined)
    }
  }

  /** A node that is up, drawn from the seed (none when every node is down). */
  #pickUp (): SimFedNode | undefined {
    const up = this.#nodes().filter((n) => n.up)
    return up.length > 0 ? this.#prng.pick(up) : undefined
  }

  #partition (kind: FaultStep['kind'], a: string[], b: string[], oneWay: boolean, detail: string): void {
    this.#net.partition(a, b, oneWay)
    this.#stats.partitions++
    this.#event(kind, detail)
  }

  #heal (detail: string): void {
    if (!this.#net.partitioned) return
    this.#net.heal()
    this.#event('heal', detail)
  }

  #crash (node: SimFedNode, kind: 'crash' | 'kill-leader'): void {
    const role = node.tasks?.raftStatus().role ?? 'down'
    for (const p of this.#proposals) if (p.status === 'pending' && p.node === node) p.status = 'lost'
    node.crash()
    this.#stats.crashes++
    this.#event(kind, `${node.name} killed (${role}, ${node.storage.inflight} writes in flight)`, node)
  }

  async #restart (node: SimFedNode): Promise<void> {
    if (node.up || this.#violation !== undefined) return
    const { torn, lost } = await node.restart()
    this.#event('restart', `${node.name} restarted (incarnation ${node.incarnation}; ${torn} unacknowledged writes landed, ${lost} lost)`, node)
  }

  // ---- observation ----

  /** What leaves an org's nodes: honest orgs' signatures are checked; Byzantine orgs lie here. */
  #outbound (org: SimOrg, node: () => SimFedNode): (to: string, packet: SimPacket) => SimPacket[] {
    const kind = this.#scenario.byzantine[org.name]
    if (kind === undefined) {
      return (_to, packet) => {
        this.#guard(() => this.#slots.observe(org.name, node().name, this.#scheduler.nowMs, packet))
        return [packet]
      }
    }
    let lie: ((to: string, packet: SimPacket) => SimPacket[]) | undefined
    return (to, packet) => {
      lie ??= this.#byzantine(org, kind).outbound(node().identity, node().certificate, () => node().clock)
      return lie(to, packet)
    }
  }

  #byzantine (org: SimOrg, kind: ByzantineKind): ByzantineOrg {
    let b = this.#byzantineOrgs.get(org.name)
    if (b === undefined) {
      b = new ByzantineOrg({
        kind, org: org.name, root: org.root.publicKeyHex, replicas: this.#orgs.map((o) => o.root.publicKeyHex), prng: this.#prng.fork(),
        rootOf: (address) => this.#orgOf.get(address)?.root.publicKeyHex
      })
      this.#byzantineOrgs.set(org.name, b)
    }
    return b
  }

  #guard (check: () => void): void {
    try {
      check()
    } catch (err) {
      if (!(err instanceof FederationViolation)) throw err
      this.#violation ??= err
    }
  }

  #check (): void {
    if (this.#violation !== undefined) throw this.#violation
    this.#followVotes()
    for (const node of this.#nodes()) {
      if (node.bootFailure !== undefined && this.#scenario.byzantine[node.org.name] === undefined) {
        throw new FederationViolation('restart', `${node.name} could not start again: ${node.bootFailure.message}`)
      }
      const status = node.tasks?.raftStatus()
      if (node.up && status?.role === 'leader' && this.#leaders.observe(node.org.name, node.name, status.term)) this.#event('leader', `${node.name} leads ${node.org.name} in term ${status.term}`, node)
      const pbft = node.federation?.status().pbft
      if (pbft !== undefined && this.#scenario.byzantine[node.org.name] === undefined && pbft.view > this.#viewMax) {
        this.#stats.viewChanges += pbft.view - this.#viewMax
        this.#event('view-change', `view ${pbft.view} (primary ${this.#orgs.find((o) => o.root.publicKeyHex === pbft.primary)?.name ?? '?'})`, node)
        this.#viewMax = pbft.view
      }
    }
  }

  async #sample (tMs: number): Promise<void> {
    const sorted = [...this.#latencies].sort((a, b) => a - b)
    const boards: Record<string, number> = {}
    for (const org of this.#honestOrgs()) {
      let size = 0
      for (const node of org.nodes) if (node.tasks !== undefined) size = Math.max(size, (await node.tasks.list({ limit: LIST_LIMIT_MAX })).length)
      boards[org.name] = size
    }
    this.#series.push({ tMs, committed: this.#ackedInBucket, latencyP50Ms: quantile(sorted, 0.5), latencyP99Ms: quantile(sorted, 0.99), view: this.#viewMax, boards })
    this.#ackedInBucket = 0
    this.#latencies = []
    if (tMs % 1000 === 0) this.#options.onProgress?.(tMs)
  }

  // ---- the liveness phase and the end ----

  async #liveness (): Promise<void> {
    const s = this.#scenario
    this.#heal('liveness phase: network healed')
    for (const node of this.#nodes()) node.clock.skewMs = 0
    for (const node of this.#nodes().filter((n) => !n.up)) void this.#restart(node)
    const deadlineMs = this.#scheduler.nowMs + s.livenessMsMax
    let probed = false
    while (this.#scheduler.nowMs < deadlineMs) {
      await this.#scheduler.runUntil(this.#scheduler.nowMs + BUCKET_MS)
      this.#check()
      await this.#sample(this.#scheduler.nowMs)
      // Once the federation is back, every honest org proves it still orders a new task.
      if (!probed && this.#honestOrgs().every((o) => o.nodes.some((n) => n.federation?.status().hosting === true))) {
        probed = true
        for (const org of this.#honestOrgs()) this.#proposeFrom(this.#prng.pick(org.nodes))
      }
      if (probed && this.#proposals.every((p) => p.status !== 'pending') && await this.#everyBoardHoldsEveryAck()) return
    }
    const pending = this.#proposals.filter((p) => p.status === 'pending')
    const hosting = this.#orgs.map((o) => `${o.name}:${o.nodes.filter((n) => n.federation?.status().hosting === true).map((n) => n.index).join('+') || 'none'}`).join(' ')
    throw new FederationViolation('liveness', `${s.livenessMsMax} ms after healing: ${pending.length} proposals pending (${pending.slice(0, 5).map((p) => `sim-${p.n}@${p.node.name}`).join(', ')}), probes ${probed ? 'sent' : 'never sent: some org hosts no replica'}; hosting ${hosting}; boards: ${(await this.#missingAcks()).join('; ') || 'complete'}`)
  }

  /** One cross-org task from node, followed to its receipt (or failure) and timed. */
  #proposeFrom (node: SimFedNode): void {
    const p: Proposal = { n: this.#proposals.length, node, startMs: this.#scheduler.nowMs, status: 'pending' }
    this.#proposals.push(p)
    void node.federation?.propose({ title: `sim-${p.n}`, capability: 'sim', payload: { n: p.n } }, { timeoutMs: PROPOSE_TIMEOUT_MS }).then((receipt) => {
      if (p.status !== 'pending') return
      p.status = receipt.accepted ? 'acked' : 'failed'
      p.ref = `${receipt.epoch}.${receipt.seq}.${receipt.position}`
      if (!receipt.accepted) p.reason = receipt.reason
      this.#ackedInBucket++
      this.#latencies.push(this.#scheduler.nowMs - p.startMs)
    }, (err: Error) => {
      if (p.status !== 'pending') return
      p.status = 'failed'
      p.reason = err.message
    })
  }

  async #everyBoardHoldsEveryAck (): Promise<boolean> {
    return (await this.#missingAcks()).length === 0
  }

  /** Honest nodes whose boards lack an acknowledged task, with the first few missing. */
  async #missingAcks (): Promise<string[]> {
    const acked = this.#proposals.filter((p) => p.status === 'acked')
    const missing: string[] = []
    for (const node of this.#honestNodes()) {
      const copies = await this.#copies(node)
      // An admitted org holds what was ordered from its first epoch on.
      const fromEpoch = this.#admitted.get(node.org.name) ?? 0
      const lacks = acked.filter((p) => !copies.has(p.n) && Number(p.ref!.split('.')[0]) >= fromEpoch)
      if (lacks.length > 0) missing.push(`${node.name} lacks ${lacks.length} (${lacks.slice(0, 3).map((p) => `sim-${p.n}@${p.ref ?? '?'}`).join(', ')})`)
    }
    return missing
  }

  async #copies (node: SimFedNode): Promise<Map<number, string[]>> {
    const byN = new Map<number, string[]>()
    for (const t of await this.#board(node)) {
      const copy = federatedCopy(t)
      if (copy === undefined) continue
      byN.set(copy.n, [...byN.get(copy.n) ?? [], copy.ref])
    }
    return byN
  }

  async #board (node: SimFedNode): Promise<Task[]> {
    const tasks: Task[] = []
    for (let page = await node.tasks!.list({ limit: LIST_LIMIT_MAX }); page.length > 0; page = await node.tasks!.list({ afterIndex: page[page.length - 1]!.createdIndex, limit: LIST_LIMIT_MAX })) {
      tasks.push(...page)
      if (page.length < LIST_LIMIT_MAX) break
    }
    return tasks
  }

  async #finalChecks (): Promise<void> {
    const refOf = new Map<string, number>()
    for (const node of this.#honestNodes()) {
      const copies = await this.#copies(node)
      for (const [n, refs] of copies) {
        if (refs.length > 1) throw new FederationViolation('exactly-once', `${node.name} holds sim-${n} ${refs.length} times (${refs.join(', ')})`)
        const ref = refs[0]!
        const acked = this.#proposals[n]
        if (acked?.status === 'acked' && acked.ref !== ref) throw new FederationViolation('receipt', `sim-${n} acknowledged at ${acked.ref} but ${node.name} holds it at ${ref}`)
        const other = refOf.get(ref)
        if (other !== undefined && other !== n) throw new FederationViolation('agreement', `at ${ref} one honest node holds sim-${other}, ${node.name} holds sim-${n}`)
        refOf.set(ref, n)
      }
      const audit = await node.audit!.verify()
      if (!audit.ok) throw new FederationViolation('audit-chain', `${node.name}'s audit log does not verify: ${JSON.stringify(audit)}`)
    }
    this.#line(`ok: ${this.#proposals.filter((p) => p.status === 'acked').length}/${this.#proposals.length} acknowledged, ${this.#slots.checked} signed slots checked`)
  }

  // ---- helpers ----

  #nodes (): SimFedNode[] {
    return this.#orgs.flatMap((o) => o.nodes)
  }

  /** Honest member orgs (a revoked org is no longer one; an admitted one is once it joined). */
  #honestOrgs (): SimOrg[] {
    return this.#orgs.filter((o) => o.federation !== undefined && this.#scenario.byzantine[o.name] === undefined && !this.#revoked.has(o.name))
  }

  #honestNodes (): SimFedNode[] {
    return this.#honestOrgs().flatMap((o) => o.nodes).filter((n) => n.up && n.tasks !== undefined)
  }

  #leaderOf (org: SimOrg): SimFedNode | undefined {
    return org.nodes.find((n) => n.up && n.tasks?.raftStatus().role === 'leader')
  }

  #primaryHost (): SimFedNode | undefined {
    const primary = this.#nodes().map((n) => n.federation?.status().pbft?.primary).find((p) => p !== undefined)
    const org = this.#orgs.find((o) => o.root.publicKeyHex === primary)
    return org === undefined ? undefined : org.nodes.find((n) => n.federation?.status().hosting === true)
  }

  #event (kind: SimEvent['kind'], detail: string, node?: SimFedNode): void {
    this.#events.push({ tMs: this.#scheduler.nowMs, kind, ...(node !== undefined ? { org: node.org.name, node: node.name } : {}), detail })
    this.#line(`${kind} ${detail}`)
  }

  #line (text: string): void {
    const line = `${String(this.#scheduler.nowMs).padStart(6)} ms  ${text}`
    if (this.#options.trace === true) (this.#options.print ?? console.log)(line)
    this.#trace.push(line)
    if (this.#trace.length > TRACE_LINES_MAX && this.#options.trace !== true) this.#trace.shift()
  }
}

function quantile (sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
}

/** A pino logger whose JSON lines go into the run's trace (level, message and fields, no timestamps). */
function traceLogger (write: (line: string) => void): Logger {
  return pino({ level: 'info', base: null, timestamp: false }, {
    write: (json: string) => {
      const { level, msg, ...fields } = JSON.parse(json) as Record<string, unknown>
      write(`${pino.levels.labels[level as number] ?? String(level)} ${String(msg)} ${JSON.stringify(fields)}`)
    }
  })
}

// The whole-federation simulator's inputs and outputs: a scenario (what `fedmesh simulate` reads
// from YAML or flags, or draws from a seed in swarm mode) and the report it writes (JSON, and the
// HTML page drawn from it). Times are simulated milliseconds from the start of the run.

// (A censoring primary is simulated by the PBFT simulator; here requests are not PBFT messages, so it has no hook yet.)
export const BYZANTINE_KINDS = ['equivocate', 'forge', 'replay', 'silent', 'conflicting-view-change'] as const
export type ByzantineKind = typeof BYZANTINE_KINDS[number]

export type FaultKind =
  | 'partition-org' // split one org's nodes in two
  | 'partition-orgs' // cut some orgs off from the others
  | 'partition-one-way' // asymmetric: one side hears the other, not back
  | 'isolate-primary-host' // the node hosting the current primary's replica
  | 'crash' // kill -9 of one node: unsynced writes lost, in-flight batches torn
  | 'kill-leader' // kill -9 of an org's Raft leader
  | 'restart' // bring a crashed node back from its disk
  | 'clock-skew' // one node's wall clock jumps
  | 'heal' // every partition healed, every crashed node restarted
  | 'vote-admit' | 'vote-revoke' // governance mid-run

export interface FaultStep {
  atMs: number
  kind: FaultKind
  /** Org name or node name (`org/index`, e.g. `alpha/1`); the simulator picks one when omitted. */
  target?: string
  /** For clock-skew: the jump; for partitions: how long before it heals by itself. */
  ms?: number
}

export interface Scenario {
  seed: number
  /** Org count (4..10) and nodes per org (1..5). */
  orgs: number
  nodesPerOrg: number
  /** Safety phase (faults, workload), then a liveness phase (healed) bounded by livenessMsMax. */
  durationMs: number
  livenessMsMax: number
  workload: {
    /** Cross-org task proposals per simulated second, spread over the nodes of every org. */
    tasksPerSecond: number
    /** Proposals each client keeps in flight at most. */
    concurrency: number
  }
  network: {
    /** One-way latency ranges. */
    intraOrgMs: [number, number]
    interOrgMs: [number, number]
    dropPerMille: number
    duplicatePerMille: number
  }
  /** A fixed schedule, or 'random': faults drawn from the seed (swarm testing). */
  faults: FaultStep[] | 'random'
  /** Byzantine orgs (at most f) and their behaviour. */
  byzantine: Record<string, ByzantineKind>
  /** Disk write latency range of every node. */
  diskMs: [number, number]
}

export interface SimEvent {
  tMs: number
  kind: FaultKind | 'leader' | 'view-change' | 'epoch' | 'violation'
  org?: string
  node?: string
  detail: string
}

/** One bucket of the run's time series (bucketMs wide). */
export interface SeriesPoint {
  tMs: number
  /** Cross-org tasks acknowledged to their proposer in this bucket. */
  committed: number
  latencyP50Ms: number | null
  latencyP99Ms: number | null
  /** PBFT view of the federation (highest view an honest replica is in) at the end of the bucket. */
  view: number
  /** Tasks on each org's board (the largest among its honest nodes) at the end of the bucket. */
  boards: Record<string, number>
}

export interface FederationSimReport {
  seed: number
  ok: boolean
  violation?: { invariant: string, message: string }
  scenario: Scenario
  stats: {
    simulatedMs: number
    wallMs: number
    proposed: number
    acknowledged: number
    viewChanges: number
    leaderChanges: number
    crashes: number
    partitions: number
    messages: number
    dropped: number
  }
  bucketMs: number
  series: SeriesPoint[]
  events: SimEvent[]
  /** The last trace lines (all of them with trace on). */
  trace: string[]
}

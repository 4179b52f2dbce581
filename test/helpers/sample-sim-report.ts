import type { FederationSimReport, Scenario, SeriesPoint, SimEvent } from '../../simulations/federation/scenario.js'
import { orgNames, SCENARIO_DEFAULTS } from '../../simulations/federation/scenario-file.js'

// A federation simulator report built by hand from the types (for the renderer and the CLI tests,
// and the README's screenshot): a leader killed and restarted, an org cut off and healed with a
// view change, a clock jump, and optionally a violation.

export function sampleReport (scenario: Scenario = { ...SCENARIO_DEFAULTS, durationMs: 30_000, seed: 42 }, violated = false): FederationSimReport {
  const bucketMs = 500
  const endMs = scenario.durationMs + Math.min(scenario.livenessMsMax, 5000)
  const orgs = orgNames(scenario.orgs)
  const at = (fraction: number): number => Math.round(scenario.durationMs * fraction / 100) * 100
  const [killedAt, partitionedAt, healedAt] = [at(0.25), at(0.45), at(0.6)]
  const events: SimEvent[] = [
    ...orgs.map((org): SimEvent => ({ tMs: 150, kind: 'leader', org, node: `${org}/0`, detail: 'elected in term 1' })),
    { tMs: killedAt, kind: 'kill-leader', org: 'alpha', node: 'alpha/0', detail: 'kill -9 of the Raft leader' },
    { tMs: killedAt + 400, kind: 'leader', org: 'alpha', node: 'alpha/1', detail: 'elected in term 2' },
    { tMs: killedAt + 3000, kind: 'restart', org: 'alpha', node: 'alpha/0', detail: 'restarted from its disk' },
    { tMs: partitionedAt, kind: 'partition-orgs', org: 'delta', detail: 'delta cut off from alpha, bravo, charlie' },
    { tMs: partitionedAt + 2100, kind: 'view-change', detail: 'view 0 → 1 (primary alpha unreachable from a quorum?)' },
    { tMs: healedAt, kind: 'heal', detail: 'every partition healed' },
    { tMs: at(0.7), kind: 'clock-skew', org: 'bravo', node: 'bravo/2', detail: 'wall clock +1500 ms' },
    ...(violated ? [{ tMs: at(0.8), kind: 'violation', detail: 'charlie/1 and delta/0 applied different batches at seq 212' } satisfies SimEvent] : [])
  ]
  const series: SeriesPoint[] = []
  let state = scenario.seed >>> 0
  const noise = (): number => { state = (Math.imul(state, 1664525) + 1013904223) >>> 0; return state / 2 ** 32 }
  const boards = Object.fromEntries(orgs.map((org) => [org, 0]))
  for (let tMs = 0; tMs < endMs; tMs += bucketMs) {
    const stalled = (tMs >= partitionedAt && tMs < partitionedAt + 2500) || (tMs >= killedAt && tMs < killedAt + 500)
    const committed = stalled ? 0 : Math.round(scenario.workload.tasksPerSecond * bucketMs / 1000 * (0.8 + 0.4 * noise()))
    for (const org of orgs) boards[org] = boards[org]! + (org === 'delta' && tMs >= partitionedAt && tMs < healedAt ? 0 : committed)
    const p50 = 40 + 20 * noise()
    series.push({
      tMs,
      committed,
      latencyP50Ms: committed === 0 ? null : Math.round(p50),
      latencyP99Ms: committed === 0 ? null : Math.round(p50 * (2 + noise()) + (tMs - partitionedAt < 4000 && tMs > partitionedAt ? 2000 : 0)),
      view: tMs >= partitionedAt + 2100 ? 1 : 0,
      boards: { ...boards }
    })
  }
  const acknowledged = series.reduce((sum, p) => sum + p.committed, 0)
  return {
    seed: scenario.seed,
    ok: !violated,
    ...(violated ? { violation: { invariant: 'agreement', message: 'charlie/1 and delta/0 applied different batches at seq 212 <script>' } } : {}),
    scenario,
    stats: { simulatedMs: endMs, wallMs: 4200, proposed: acknowledged + 17, acknowledged, viewChanges: 1, leaderChanges: orgs.length + 1, crashes: 1, partitions: 1, messages: 183_402, dropped: 1_811 },
    bucketMs,
    series,
    events,
    trace: ['t=0 alpha/0 raft: campaign term 1', 't=150 alpha/0 raft: leader term 1']
  }
}

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

// One registry per node (tests run several nodes in one process), exposed at GET /metrics.
// Cumulative counts are Counters (names ending in _total), levels are Gauges; the process and
// Node.js runtime metrics keep prom-client's standard names (process_cpu_seconds_total…), less
// its three gauges named like counters (promtool refuses them), which only sum a labelled gauge
// it keeps (nodejs_active_handles_total = sum of nodejs_active_handles by type).
const MISNAMED_DEFAULT_GAUGES = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']

export class NodeMetrics {
  readonly registry = new Registry()
  readonly envelopes = new Counter({
    name: 'fedmesh_envelopes_total',
    help: 'Inbound envelopes by result (accepted, ignored, rejected) and reason',
    labelNames: ['result', 'reason'] as const,
    registers: [this.registry]
  })

  readonly gossipLatency = new Histogram({
    name: 'fedmesh_gossip_latency_seconds',
    help: 'Announcement latency from the sender\'s timestamp to verified delivery',
    buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
    registers: [this.registry]
  })

  constructor (sources: { peers: () => number, membersByStatus: () => Record<string, number>, revokedRefusals: () => Readonly<Record<string, number>> }) {
    collectDefaultMetrics({ register: this.registry })
    for (const name of MISNAMED_DEFAULT_GAUGES) this.registry.removeSingleMetric(name)
    collectedGauge(this.registry, 'fedmesh_peers_connected', 'Peers with an open libp2p connection', sources.peers)
    new Gauge({
      name: 'fedmesh_members',
      help: 'Known mesh members by status (alive, suspect, dead, left)',
      labelNames: ['status'] as const,
      registers: [this.registry],
      collect () {
        for (const [status, count] of Object.entries(sources.membersByStatus())) this.set({ status }, count)
      }
    })
    // The revocation list keeps its own counts (the connection gater counts before the node
    // exists), so every refusal is counted without an audit entry each.
    mirroredCounter(this.registry, 'fedmesh_revoked_refusals_total', 'Refusals of a revoked organisation\'s nodes by gate (announcement, capability, connection, federation)',
      ['path'], () => Object.entries(sources.revokedRefusals()).map(([path, count]) => ({ labels: { path }, count })))
  }
}

/** A gauge read when scraped; a value of undefined (nothing to report now) leaves it unset. */
export function collectedGauge (registry: Registry, name: string, help: string, value: () => number | undefined): void {
  new Gauge({
    name, help, registers: [registry],
    collect () {
      const v = value()
      if (v !== undefined) this.set(v)
    }
  })
}

export interface CountSample<L extends string> { labels: Record<L, string>, count: number }

/**
 * A Counter that follows counts a component keeps itself (messages sent, view changes…), read
 * when scraped: it adds what each count grew by since the last scrape. A count that went down
 * (the component was recreated, as a replica re-hosted here) restarted from zero, so all of it
 * is new; the Counter itself never goes down.
 */
export function mirroredCounter<L extends string> (registry: Registry, name: string, help: string, labelNames: readonly L[], read: () => Iterable<CountSample<L>>): void {
  if (!name.endsWith('_total')) throw new Error(`counter ${name} must end in _total`)
  const last = new Map<string, number>()
  new Counter({
    name, help, labelNames, registers: [registry],
    collect () {
      for (const { labels, count } of read()) {
        const key = labelNames.map((l) => labels[l]).join('\u0000')
        const before = last.get(key) ?? 0
        last.set(key, count)
        this.inc(labels, count >= before ? count - before : count)
      }
    }
  })
}

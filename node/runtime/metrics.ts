import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

// One registry per node (tests run several nodes in one process), exposed at GET /metrics.
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
    collectDefaultMetrics({ register: this.registry, prefix: 'fedmesh_process_' })
    new Gauge({
      name: 'fedmesh_peers_connected',
      help: 'Peers with an open libp2p connection',
      registers: [this.registry],
      collect () { this.set(sources.peers()) }
    })
    new Gauge({
      name: 'fedmesh_members',
      help: 'Known mesh members by status (alive, suspect, dead, left)',
      labelNames: ['status'] as const,
      registers: [this.registry],
      collect () {
        for (const [status, count] of Object.entries(sources.membersByStatus())) this.set({ status }, count)
      }
    })
    // Mirrors the revocation list's own monotonic counts (the connection gater counts before the
    // node exists), so every refusal is counted without an audit entry each.
    new Counter({
      name: 'fedmesh_revoked_refusals_total',
      help: 'Refusals of a revoked organisation\'s nodes by gate (announcement, capability, connection, federation)',
      labelNames: ['path'] as const,
      registers: [this.registry],
      collect () {
        this.reset()
        for (const [path, count] of Object.entries(sources.revokedRefusals())) this.inc({ path }, count)
      }
    })
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

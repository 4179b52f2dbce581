import type { RawResponse, RouteAccess, RouteHandler } from './server.js'
import type { MonitoredNode } from './console-monitor.js'

// Probes for load balancers, orchestrators and systemd, open without a token (they say nothing a
// port scan would not): /healthz answers while the process serves requests; /readyz says whether
// this node can do its work — the org's Raft group has a leader it knows, and the org's PBFT
// replica runs here exactly when it should (on the org's Raft leader, while the org is a member
// of the federation). 503 with the failing checks otherwise.

export const HEALTH_ACCESS: Record<string, RouteAccess> = { 'GET /healthz': 'public', 'GET /readyz': 'public' }

export interface ReadinessCheck { name: 'raft-leader' | 'federation-replica', ok: boolean, detail: string }

export function healthRoutes (node: Pick<MonitoredNode, 'raftStatus' | 'federationStatus'>): Record<string, RouteHandler> {
  return {
    'GET /healthz': async () => ({ ok: true }),
    'GET /readyz': async (): Promise<RawResponse> => {
      const checks = readiness(node)
      const ready = checks.every((c) => c.ok)
      return { contentType: 'application/json', status: ready ? 200 : 503, body: JSON.stringify({ ready, checks }) }
    }
  }
}

export function readiness (node: Pick<MonitoredNode, 'raftStatus' | 'federationStatus'>): ReadinessCheck[] {
  const raft = node.raftStatus()
  const checks: ReadinessCheck[] = [
    raft.leader !== null
      ? { name: 'raft-leader', ok: true, detail: raft.role === 'leader' ? 'this node leads the org\'s Raft group' : 'the org\'s Raft group has a leader' }
      : { name: 'raft-leader', ok: false, detail: 'no Raft leader known: an election is under way, or the org lost its quorum' }
  ]
  const federation = node.federationStatus()
  if (federation === undefined) return checks
  const expected = federation.member && raft.role === 'leader'
  checks.push({
    name: 'federation-replica',
    ok: federation.hosting === expected,
    detail: federation.hosting
      ? (expected ? 'hosting the org\'s PBFT replica (Raft leader)' : 'hosting the org\'s PBFT replica without leading the org\'s Raft group')
      : (expected ? 'leading the org\'s Raft group but not hosting its PBFT replica' : (federation.member ? 'the replica is hosted by the org\'s Raft leader' : 'the org is not a member of the current epoch'))
  })
  return checks
}

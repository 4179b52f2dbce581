import type { Registry } from 'prom-client'
import type { FederationStatus } from './federation.js'
import { collectedGauge, mirroredCounter } from '../runtime/metrics.js'

// What an operator watches of the federation on this node: the epoch, whether this node hosts its
// org's replica, the replica's view and progress, and the envelopes it took, sent and refused.
export function registerFederationMetrics (registry: Registry, status: () => FederationStatus): void {
  const gauge = (name: string, help: string, value: (s: FederationStatus) => number | undefined): void => collectedGauge(registry, name, help, () => value(status()))
  gauge('fedmesh_federation_epoch', 'Federation epoch (membership changes so far)', (s) => s.epoch)
  gauge('fedmesh_federation_members', 'Member orgs in the current epoch', (s) => s.orgs.length)
  gauge('fedmesh_pbft_hosting', '1 while this node hosts its org\'s PBFT replica (it leads the org\'s Raft group)', (s) => s.hosting ? 1 : 0)
  gauge('fedmesh_pbft_view', 'PBFT view of the hosted replica', (s) => s.pbft?.view)
  gauge('fedmesh_pbft_executed_seq', 'Highest PBFT sequence the hosted replica executed', (s) => s.pbft?.lastExecuted)
  gauge('fedmesh_pbft_pending_requests', 'Client requests the hosted replica holds, not yet executed', (s) => s.pbft?.pendingRequests)
  mirroredCounter(registry, 'fedmesh_pbft_view_changes_total', 'View changes started by the replicas hosted on this node', [], () => {
    const pbft = status().pbft
    return pbft === undefined ? [] : [{ labels: {}, count: pbft.viewChanges }]
  })
  mirroredCounter(registry, 'fedmesh_federation_envelopes_total', 'Federation envelopes received, sent, and rejected by reason', ['result', 'reason'], () => {
    const s = status()
    return [
      { labels: { result: 'received', reason: '' }, count: s.received },
      { labels: { result: 'sent', reason: '' }, count: s.sent },
      ...Object.entries(s.rejected).map(([reason, count]) => ({ labels: { result: 'rejected', reason }, count }))
    ]
  })
}

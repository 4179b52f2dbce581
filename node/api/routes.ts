import type { Registry } from 'prom-client'
import { ApiError, intParam, type RouteAccess, type RouteHandler } from './server.js'
import type { AuditLog } from '../gate/audit.js'
import { AUDIT_TAIL_ENTRIES_MAX } from '../gate/audit.js'
import type { Federation } from '../federation/federation.js'
import type { TaskService } from '../org/task-service.js'
import type { PeerTrust } from '../../membership/trust.js'
import { FedmeshError } from '../../base/errors.js'
import { taskRoutes } from './task-routes.js'
import { federationRoutes } from './federation-routes.js'
import { CONSOLE_ACCESS, collect, consoleRoutes, type ConsoleNode } from './console-routes.js'
import { HEALTH_ACCESS, healthRoutes } from './health-routes.js'
import type { ConsoleMonitor } from './console-monitor.js'
import { raftRoutes, type RaftApiNode } from './raft-routes.js'

/** What the routes read of a running node: declared here, so the API does not import the node that starts it (FedmeshNode has it all). */
export interface ApiNode extends RaftApiNode {
  readonly key: string
  status(): unknown
  members(): unknown
  trust(): PeerTrust[]
  readonly auditLog: Pick<AuditLog, 'tail' | 'exportSince' | 'verify' | 'head'>
  /** Getters that throw while absent (no task board yet, no genesis): read per request. */
  readonly tasks: TaskService
  readonly federation: Federation
  readonly metrics: { readonly registry: Registry }
}

/** Who may call what: the console's page and the health probes are open, /metrics takes the metrics token too; the rest needs the admin token. */
export const ROUTE_ACCESS: Record<string, RouteAccess> = { ...CONSOLE_ACCESS, ...HEALTH_ACCESS, 'GET /metrics': 'metrics' }

/** The node as the console, its monitor and the health probes read it. */
export function consoleNode (node: ApiNode): ConsoleNode {
  return {
    status: () => node.status(),
    members: () => node.members(),
    trust: () => node.trust(),
    raftStatus: () => node.tasks.raftStatus(),
    federationStatus: () => federationOf(node)?.status(),
    taskSummary: (recentMax) => node.tasks.summary(recentMax),
    auditLog: node.auditLog
  }
}

// The admin API's routes over a running node (see README "Admin API").
export function nodeRoutes (node: ApiNode, monitor: ConsoleMonitor): Record<string, RouteHandler> {
  const view = consoleNode(node)
  return {
    ...healthRoutes(view),
    ...consoleRoutes(view, monitor),
    'GET /v1/status': async () => node.status(),
    'GET /v1/members': async () => node.members(),
    'GET /v1/trust': async () => node.trust(),
    'GET /v1/audit': async (url) => await collect(node.auditLog.tail(intParam(url, 'tail', 50, AUDIT_TAIL_ENTRIES_MAX))),
    'GET /v1/audit/export': async (url) => {
      const since = url.searchParams.get('sinceTime')
      const from = since !== null ? { timeMs: Date.parse(since) } : { seq: intParam(url, 'since', 1, Number.MAX_SAFE_INTEGER) }
      if ('timeMs' in from && Number.isNaN(from.timeMs)) throw new ApiError(400, 'sinceTime must be an ISO time')
      const limit = intParam(url, 'limit', AUDIT_TAIL_ENTRIES_MAX, AUDIT_TAIL_ENTRIES_MAX)
      return { contentType: 'application/x-ndjson', body: (await collect(node.auditLog.exportSince(from), limit)).map((e) => JSON.stringify(e) + '\n').join('') }
    },
    'GET /v1/audit/verify': async () => await node.auditLog.verify(),
    ...taskRoutes(() => node.tasks),
    ...raftRoutes(node),
    ...federationRoutes(() => node.federation, node.key),
    'GET /metrics': async () => ({ contentType: node.metrics.registry.contentType, body: await node.metrics.registry.metrics() })
  }
}

/** The node's federation, or undefined when its data dir holds no genesis. */
function federationOf (node: ApiNode): Federation | undefined {
  try {
    return node.federation
  } catch (err) {
    if (err instanceof FedmeshError && err.code === 'not-federated') return undefined
    throw err
  }
}

import type { Registry } from 'prom-client'
import { ApiError, intParam, type RouteHandler } from './server.js'
import type { AuditEntry, AuditLog } from '../gate/audit.js'
import { AUDIT_TAIL_ENTRIES_MAX } from '../gate/audit.js'
import type { Federation } from '../federation/federation.js'
import type { TaskService } from '../org/task-service.js'
import { taskRoutes } from './task-routes.js'
import { federationRoutes } from './federation-routes.js'
import { raftRoutes, type RaftApiNode } from './raft-routes.js'

/** What the routes read of a running node: declared here, so the API does not import the node that starts it (FedmeshNode has it all). */
export interface ApiNode extends RaftApiNode {
  readonly key: string
  status(): unknown
  members(): unknown
  trust(): unknown
  readonly auditLog: Pick<AuditLog, 'tail' | 'exportSince' | 'verify'>
  /** Getters that throw while absent (no task board yet, no genesis): read per request. */
  readonly tasks: TaskService
  readonly federation: Federation
  readonly metrics: { readonly registry: Registry }
}

// The admin API's routes over a running node (see README "Admin API").
export function nodeRoutes (node: ApiNode): Record<string, RouteHandler> {
  return {
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

async function collect (entries: AsyncIterable<AuditEntry>, max = Infinity): Promise<AuditEntry[]> {
  const out: AuditEntry[] = []
  for await (const entry of entries) {
    if (out.length >= max) break
    out.push(entry)
  }
  return out
}

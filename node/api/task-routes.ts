import { ApiError, intParam, type RouteHandler, type RouteRequest } from './server.js'
import { FedmeshError } from '../../base/errors.js'
import { LIST_LIMIT_MAX, type TaskService } from '../org/task-service.js'
import { TASK_STATUSES, taskErrorStatus, type TaskStatus } from '../org/task-board.js'

// The task board's admin API routes. Writes answer once the command is committed and applied on
// this node: {taskId, index, term}. Reads are served from this node's board; `?linearizable=1`
// first waits for a ReadIndex barrier (so the read reflects every write committed before it).
export function taskRoutes (tasks: () => TaskService): Record<string, RouteHandler> {
  return {
    'POST /v1/tasks': async (_url, req) => await answer(async () => {
      const b = body(req)
      return await tasks().propose({ title: b.title as string, capability: b.capability as string, payload: b.payload }, writeOptions(b))
    }),
    'GET /v1/tasks': async (url) => await answer(async () => {
      const status = url.searchParams.get('status')
      if (status !== null && !TASK_STATUSES.includes(status as TaskStatus)) throw new ApiError(400, `status must be one of ${TASK_STATUSES.join(', ')}`)
      const filter = { afterIndex: intParam(url, 'after', 0, Number.MAX_SAFE_INTEGER), limit: intParam(url, 'limit', 100, LIST_LIMIT_MAX) }
      return await tasks().list(status === null ? filter : { ...filter, status: status as TaskStatus }, readOptions(url))
    }),
    'GET /v1/tasks/:id': async (url, req) => await answer(async () => {
      const task = await tasks().get(req.params.id!, readOptions(url))
      if (task === undefined) throw new ApiError(404, `no task ${req.params.id!}`, 'task-not-found')
      return task
    }),
    'POST /v1/tasks/:id/claim': async (_url, req) => await answer(async () => {
      const b = body(req)
      return await tasks().claim(req.params.id!, { ...writeOptions(b), ...assignee(b) })
    }),
    'POST /v1/tasks/:id/complete': async (_url, req) => await answer(async () => {
      const b = body(req)
      return await tasks().complete(req.params.id!, b.result, { ...writeOptions(b), ...assignee(b) })
    }),
    'POST /v1/tasks/:id/fail': async (_url, req) => await answer(async () => {
      const b = body(req)
      return await tasks().fail(req.params.id!, b.result, { ...writeOptions(b), ...assignee(b) })
    })
  }
}

const RAFT_ERROR_STATUS: Record<string, number> = { 'raft-invalid-conf-change': 400, 'raft-not-member': 404, 'raft-quorum-at-risk': 409 }

/**
 * Typed errors become HTTP statuses: bad input 400, unknown task or member 404, wrong state or a
 * removal that would cost the quorum 409, Raft unavailable 503.
 */
export async function answer<T> (fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    if (err instanceof ApiError || !(err instanceof FedmeshError)) throw err
    const status = err.code.startsWith('task-') ? taskErrorStatus(err.code) : RAFT_ERROR_STATUS[err.code] ?? 503
    throw new ApiError(status, err.message, err.code)
  }
}

export function body (req: RouteRequest): Record<string, unknown> {
  const b = req.body ?? {}
  if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new ApiError(400, 'request body must be a JSON object')
  return b as Record<string, unknown>
}

function writeOptions (b: Record<string, unknown>): { requestId?: string } {
  if (b.requestId === undefined) return {}
  if (typeof b.requestId !== 'string') throw new ApiError(400, 'requestId must be a string')
  return { requestId: b.requestId }
}

function assignee (b: Record<string, unknown>): { assignee?: string } {
  if (b.assignee === undefined) return {}
  if (typeof b.assignee !== 'string') throw new ApiError(400, 'assignee must be a string')
  return { assignee: b.assignee }
}

function readOptions (url: URL): { linearizable: boolean } {
  const v = url.searchParams.get('linearizable')
  return { linearizable: v === '1' || v === 'true' }
}

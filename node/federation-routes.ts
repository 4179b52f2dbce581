import { ApiError, type RouteHandler } from './api.js'
import { FedmeshError } from './errors.js'
import type { Federation } from './federation.js'
import { taskErrorStatus } from './tasks.js'

// The federation's admin API routes: its status, and cross-org tasks (answered once f+1 orgs
// applied the task at one PBFT sequence: {seq, position, accepted}).
export function federationRoutes (federation: () => Federation): Record<string, RouteHandler> {
  return {
    'GET /v1/federation': async () => await answer(async () => federation().status()),
    'POST /v1/federation/tasks': async (_url, req) => await answer(async () => {
      const b = req.body
      if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new ApiError(400, 'request body must be a JSON object')
      const { title, capability, payload } = b as Record<string, unknown>
      return await federation().propose({ title: title as string, capability: capability as string, payload })
    })
  }
}

/** Invalid tasks 400, a blocked payload 422, no genesis 404, busy or no answer in time 503. */
async function answer<T> (fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    if (err instanceof ApiError || !(err instanceof FedmeshError)) throw err
    const status = err.code.startsWith('task-') ? taskErrorStatus(err.code) : err.code === 'sanitize-blocked' ? 422 : err.code === 'not-federated' ? 404 : 503
    throw new ApiError(status, err.message, err.code)
  }
}

import { ApiError, type RouteHandler } from './server.js'
import { FedmeshError } from '../../base/errors.js'
import type { Federation } from '../federation/federation.js'
import { ORG_NAME_PATTERN } from '../../base/org-certificate.js'
import { taskErrorStatus } from '../org/task-board.js'

// The federation's admin API routes: its status, cross-org tasks (answered once f+1 orgs applied
// the task at one PBFT sequence: {seq, position, accepted}), this org's governance votes, and the
// audit heads a node anchored in the federation state (what `fedmesh audit verify --federation`
// checks a log against).

const KEY_HEX = /^[0-9a-f]{64}$/
/** A vote answers before the CLI's 15 s client timeout; the vote may still be ordered later (voting twice counts once). */
const VOTE_TIMEOUT_MS = 12_000

export type VoteBody = { action: 'admit', name: string, root: string } | { action: 'revoke', org: string }

export function federationRoutes (federation: () => Federation, selfKey: string): Record<string, RouteHandler> {
  return {
    'GET /v1/federation': async () => await answer(async () => federation().status()),
    /** The current epoch as an admitted org starts from it (fedmesh federation export). */
    'GET /v1/federation/epoch': async () => await answer(async () => federation().epochFile()),
    'POST /v1/federation/tasks': async (_url, req) => await answer(async () => {
      const { title, capability, payload, target } = jsonObject(req.body)
      if (target !== undefined && typeof target !== 'string') throw new ApiError(400, 'target must be a member org\'s name or root key')
      return await federation().propose({ title: title as string, capability: capability as string, payload, ...(target !== undefined ? { target } : {}) })
    }),
    /** Claim / finish a federated task by its ref (epoch.seq.position): ordered by PBFT, applied to every org's copy. */
    'POST /v1/federation/tasks/:ref/claim': async (_url, req) => await answer(async () => await federation().claim(req.params.ref!)),
    'POST /v1/federation/tasks/:ref/complete': async (_url, req) => await answer(async () => await federation().finish(req.params.ref!, 'done', jsonObject(req.body).result ?? null)),
    'POST /v1/federation/tasks/:ref/fail': async (_url, req) => await answer(async () => await federation().finish(req.params.ref!, 'failed', jsonObject(req.body).result ?? null)),
    'POST /v1/federation/votes': async (_url, req) => await answer(async () => await federation().vote(parseVote(req.body), { timeoutMs: VOTE_TIMEOUT_MS })),
    'GET /v1/federation/anchors': async (url) => await answer(async () => {
      const node = url.searchParams.get('node') ?? selfKey
      if (!KEY_HEX.test(node)) throw new ApiError(400, 'node must be a node key: 64 lowercase hex digits')
      return { node, anchors: [...federation().state?.anchorsOf(node) ?? []] }
    })
  }
}

/** Validates an untrusted vote request body. */
export function parseVote (body: unknown): VoteBody {
  const b = jsonObject(body)
  if (b.action === 'admit') {
    if (typeof b.name !== 'string' || !ORG_NAME_PATTERN.test(b.name)) throw new ApiError(400, `name must match ${ORG_NAME_PATTERN}`)
    if (typeof b.root !== 'string' || !KEY_HEX.test(b.root.toLowerCase())) throw new ApiError(400, 'root must be the org root key: 64 hex digits')
    return { action: 'admit', name: b.name, root: b.root.toLowerCase() }
  }
  if (b.action === 'revoke') {
    if (typeof b.org !== 'string' || !(ORG_NAME_PATTERN.test(b.org) || KEY_HEX.test(b.org.toLowerCase()))) throw new ApiError(400, 'org must be a member org\'s name or root key')
    return { action: 'revoke', org: b.org }
  }
  throw new ApiError(400, 'action must be \'admit\' or \'revoke\'')
}

function jsonObject (body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ApiError(400, 'request body must be a JSON object')
  return body as Record<string, unknown>
}

/** Invalid tasks 400, a blocked payload 422, no genesis 404, a non-member org 409, too many in flight 429, no answer in time 503. */
async function answer<T> (fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    if (err instanceof ApiError || !(err instanceof FedmeshError)) throw err
    throw new ApiError(errorStatus(err.code), err.message, err.code)
  }
}

function errorStatus (code: string): number {
  if (code.startsWith('task-')) return taskErrorStatus(code)
  switch (code) {
    case 'sanitize-blocked': return 422
    case 'not-federated': return 404
    case 'not-a-member': return 409
    case 'federation-busy': return 429
    default: return 503
  }
}

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { timingSafeEqual } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import type { Logger } from '../../base/log.js'
import { FedmeshError } from '../../base/errors.js'

// The admin HTTP API: loopback by default, every request needs `Authorization: Bearer <token>`
// (the token is in the data dir), except the routes its access table opens: to anyone (health
// probes, the console's page, which holds no data) or to the holder of the read-only metrics token
// (so a Prometheus server scrapes without the admin token). Routes are 'METHOD /path' → handler
// returning a JSON value, or a { contentType, body, status?, headers? } for other responses such as
// Prometheus text. A path segment ':name' in a route matches any one segment (handed over in
// params); POST bodies are JSON, bounded.
export const API_PORT_DEFAULT = 7401

export interface RawResponse { contentType: string, body: string | Uint8Array, status?: number, headers?: Record<string, string> }
/** Who may call a route: anyone, the metrics or admin token's holder, or the admin token's only (the default). */
export type RouteAccess = 'public' | 'metrics' | 'admin'
export interface RouteRequest {
  params: Record<string, string>
  body: unknown
  /** Runs fn once a successful answer was sent (e.g. stopping the node that answered). */
  afterResponse: (fn: () => void) => void
}
export type RouteHandler = (url: URL, request: RouteRequest) => Promise<unknown>
export const API_BODY_BYTES_MAX = 256 * 1024

export class ApiError extends Error {
  constructor (readonly status: number, message: string, readonly code?: string) {
    super(message)
  }
}

export interface ApiServer {
  readonly url: string
  close(): Promise<void>
}

export interface ApiInit {
  host: string
  port: number
  token: string
  routes: Record<string, RouteHandler>
  /** Routes not listed need the admin token. */
  access?: Record<string, RouteAccess>
  /** A second token, good for 'metrics' routes only. */
  metricsToken?: string
  /** Serve 'metrics' routes without a token to clients on a loopback address. */
  metricsUnauthenticated?: boolean
  logger: Logger
}

export async function startApi (init: ApiInit): Promise<ApiServer> {
  const admin = Buffer.from(`Bearer ${init.token}`)
  const metrics = init.metricsToken === undefined ? undefined : Buffer.from(`Bearer ${init.metricsToken}`)
  const authorized = (req: IncomingMessage, access: RouteAccess): boolean => {
    const given = Buffer.from(req.headers.authorization ?? '')
    if (access === 'public' || tokenMatches(given, admin)) return true
    if (access !== 'metrics') return false
    return (metrics !== undefined && tokenMatches(given, metrics)) || (init.metricsUnauthenticated === true && isLoopback(req.socket.remoteAddress))
  }
  const server: Server = createServer((req, res) => {
    void handle(req, res).catch((err) => {
      const status = err instanceof ApiError ? err.status : 500
      if (status === 500) init.logger.error({ err: (err as Error).message, url: req.url }, 'api handler failed')
      const code = err instanceof ApiError ? err.code : undefined
      // Overload (429) and unavailability (503) are worth a retry: say when, so that clients back off alike.
      send(res, status, 'application/json', JSON.stringify(code === undefined ? { error: (err as Error).message } : { error: (err as Error).message, code }),
        status === 429 || status === 503 ? { 'retry-after': '1' } : {})
    })
  })
  server.headersTimeout = 10_000
  server.requestTimeout = 30_000

  async function handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost')
    const route = findRoute(init.routes, req.method ?? 'GET', url.pathname)
    // An unknown route needs the admin token too: without it, every path answers 401 alike.
    if (!authorized(req, route === undefined ? 'admin' : init.access?.[route.key] ?? 'admin')) {
      throw new ApiError(401, 'missing or wrong bearer token (see api.token in the data dir)')
    }
    if (route === undefined) throw new ApiError(404, `no route ${req.method ?? ''} ${url.pathname}`)
    const body = req.method === 'POST' ? await readJsonBody(req) : undefined
    const after: Array<() => void> = []
    const result = await route.handler(url, { params: route.params, body, afterResponse: (fn) => after.push(fn) })
    if (after.length > 0) res.once('finish', () => { for (const fn of after) fn() })
    if (isRaw(result)) send(res, result.status ?? 200, result.contentType, result.body, result.headers)
    else send(res, 200, 'application/json', JSON.stringify(result))
  }

  await new Promise<void>((resolve, reject) => {
    const failed = (err: NodeJS.ErrnoException): void => {
      reject(err.code === 'EADDRINUSE'
        ? new FedmeshError('api-address-in-use', `cannot serve the admin API on ${init.host}:${init.port}: the address is in use (another node?); choose another with --api HOST:PORT (port 0: any free port)`)
        : err)
    }
    server.once('error', failed)
    server.listen(init.port, init.host, () => { server.off('error', failed); resolve() })
  })
  const address = server.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  return {
    url: `http://${host}:${address.port}`,
    close: async () => await new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    })
  }
}

function tokenMatches (given: Buffer, expected: Buffer): boolean {
  return given.length === expected.length && timingSafeEqual(given, expected)
}

export function isLoopback (address: string | undefined): boolean {
  return address !== undefined && (address === '::1' || /^(::ffff:)?127\./.test(address))
}

function findRoute (routes: Record<string, RouteHandler>, method: string, path: string): { key: string, handler: RouteHandler, params: Record<string, string> } | undefined {
  const exact = routes[`${method} ${path}`]
  if (exact !== undefined) return { key: `${method} ${path}`, handler: exact, params: {} }
  const segments = path.split('/')
  for (const [key, handler] of Object.entries(routes)) {
    const [routeMethod, pattern] = key.split(' ')
    const parts = pattern?.split('/') ?? []
    if (routeMethod !== method || !key.includes('/:') || parts.length !== segments.length) continue
    const params: Record<string, string> = {}
    if (parts.every((part, i) => part.startsWith(':') ? bindParam(params, part.slice(1), segments[i]!) : part === segments[i])) return { key, handler, params }
  }
  return undefined
}

function bindParam (params: Record<string, string>, name: string, segment: string): boolean {
  try {
    params[name] = decodeURIComponent(segment)
  } catch {
    return false
  }
  return segment.length > 0
}

/** The request body as JSON (undefined when empty); 413 beyond API_BODY_BYTES_MAX, 400 if not JSON. */
async function readJsonBody (req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = []
  let length = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    length += chunk.length
    if (length > API_BODY_BYTES_MAX) throw new ApiError(413, `request body exceeds ${API_BODY_BYTES_MAX} bytes`)
    chunks.push(chunk)
  }
  if (length === 0) return undefined
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new ApiError(400, 'request body is not JSON')
  }
}

/** A bounded non-negative integer query parameter (400 otherwise). */
export function intParam (url: URL, name: string, fallback: number, max: number): number {
  const raw = url.searchParams.get(name)
  if (raw === null) return fallback
  const value = Number(raw)
  if (!Number.isSafeInteger(value) || value < 0 || value > max) throw new ApiError(400, `${name} must be an integer in 0..${max}`)
  return value
}

function isRaw (value: unknown): value is RawResponse {
  return typeof value === 'object' && value !== null && 'contentType' in value && 'body' in value
}

function send (res: ServerResponse, status: number, contentType: string, body: string | Uint8Array, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...headers, 'content-type': contentType, 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

/** Splits 'host:port' (IPv6 as '[::1]:port'); port 0 asks the OS for a free one. */
export function parseHostPort (text: string): { host: string, port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text)
  const port = Number(match?.[3])
  if (match === null || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`--api must be host:port (e.g. 127.0.0.1:${API_PORT_DEFAULT}), got '${text}'`)
  }
  return { host: match[1] ?? match[2]!, port }
}

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { timingSafeEqual } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import type { Logger } from '../../base/log.js'
import { FedmeshError } from '../../base/errors.js'

// The admin HTTP API: loopback by default, every request needs `Authorization: Bearer <token>`
// (the token is in the data dir). Routes are 'METHOD /path' → handler returning a JSON value, or a
// { contentType, body } for non-JSON responses such as Prometheus text. A path segment ':name' in a
// route matches any one segment (handed over in params); POST bodies are JSON, bounded.
export const API_PORT_DEFAULT = 7401

export interface RawResponse { contentType: string, body: string }
export interface RouteRequest { params: Record<string, string>, body: unknown }
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

export async function startApi (init: { host: string, port: number, token: string, routes: Record<string, RouteHandler>, logger: Logger }): Promise<ApiServer> {
  const expected = Buffer.from(`Bearer ${init.token}`)
  const server: Server = createServer((req, res) => {
    void handle(req, res).catch((err) => {
      const status = err instanceof ApiError ? err.status : 500
      if (status === 500) init.logger.error({ err: (err as Error).message, url: req.url }, 'api handler failed')
      const code = err instanceof ApiError ? err.code : undefined
      send(res, status, 'application/json', JSON.stringify(code === undefined ? { error: (err as Error).message } : { error: (err as Error).message, code }))
    })
  })
  server.headersTimeout = 10_000
  server.requestTimeout = 30_000

  async function handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const given = Buffer.from(req.headers.authorization ?? '')
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new ApiError(401, 'missing or wrong bearer token (see api.token in the data dir)')
    }
    const url = new URL(req.url ?? '/', 'http://localhost')
    const route = findRoute(init.routes, req.method ?? 'GET', url.pathname)
    if (route === undefined) throw new ApiError(404, `no route ${req.method ?? ''} ${url.pathname}`)
    const body = req.method === 'POST' ? await readJsonBody(req) : undefined
    const result = await route.handler(url, { params: route.params, body })
    if (isRaw(result)) send(res, 200, result.contentType, result.body)
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

function findRoute (routes: Record<string, RouteHandler>, method: string, path: string): { handler: RouteHandler, params: Record<string, string> } | undefined {
  const exact = routes[`${method} ${path}`]
  if (exact !== undefined) return { handler: exact, params: {} }
  const segments = path.split('/')
  for (const [key, handler] of Object.entries(routes)) {
    const [routeMethod, pattern] = key.split(' ')
    const parts = pattern?.split('/') ?? []
    if (routeMethod !== method || !key.includes('/:') || parts.length !== segments.length) continue
    const params: Record<string, string> = {}
    if (parts.every((part, i) => part.startsWith(':') ? bindParam(params, part.slice(1), segments[i]!) : part === segments[i])) return { handler, params }
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

function send (res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) })
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

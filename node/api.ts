import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { timingSafeEqual } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import type { Logger } from './log.js'

// The admin HTTP API: loopback by default, every request needs `Authorization: Bearer <token>`
// (the token is in the data dir). Routes are 'METHOD /path' → handler returning a JSON value, or a
// { contentType, body } for non-JSON responses such as Prometheus text.
export const API_PORT_DEFAULT = 7401

export interface RawResponse { contentType: string, body: string }
export type RouteHandler = (url: URL) => Promise<unknown>

export class ApiError extends Error {
  constructor (readonly status: number, message: string) {
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
      send(res, status, 'application/json', JSON.stringify({ error: (err as Error).message }))
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
    const handler = init.routes[`${req.method ?? 'GET'} ${url.pathname}`]
    if (handler === undefined) throw new ApiError(404, `no route ${req.method ?? ''} ${url.pathname}`)
    const result = await handler(url)
    if (isRaw(result)) send(res, 200, result.contentType, result.body)
    else send(res, 200, 'application/json', JSON.stringify(result))
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(init.port, init.host, () => { server.off('error', reject); resolve() })
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

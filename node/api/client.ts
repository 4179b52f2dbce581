import { readRuntime, readToken } from '../runtime/data-dir.js'

/**
 * GETs a path (POSTs `body` as JSON when given) on the node running in dataDir, found through its runtime file and token. Returns
 * undefined after printing why on stderr (no running node, not answering, an error status).
 */
export async function callApi<T> (dataDir: string, path: string, options: { text?: boolean, body?: unknown } = {}): Promise<T | undefined> {
  const runtime = await readRuntime(dataDir)
  const token = await readToken(dataDir)
  if (runtime?.api == null || token === undefined) {
    process.stderr.write(`fedmesh: no running node with an API in ${dataDir} (start one with: fedmesh start --data-dir ${dataDir})\n`)
    return undefined
  }
  try {
    const post = options.body !== undefined
    const res = await fetch(runtime.api + path, {
      method: post ? 'POST' : 'GET',
      headers: { authorization: `Bearer ${token}`, ...(post ? { 'content-type': 'application/json' } : {}) },
      ...(post ? { body: JSON.stringify(options.body) } : {}),
      signal: AbortSignal.timeout(15_000)
    })
    if (!res.ok) {
      process.stderr.write(`fedmesh: ${path} answered ${res.status}: ${await res.text()}\n`)
      return undefined
    }
    return (options.text === true ? await res.text() : await res.json()) as T
  } catch (err) {
    process.stderr.write(`fedmesh: node at ${runtime.api} is not answering (${(err as Error).message}); is it still running (pid ${runtime.pid})?\n`)
    return undefined
  }
}

import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { readRuntime, readToken, type RuntimeInfo } from '../../node/runtime/data-dir.js'

export const CLI = fileURLToPath(new URL('../../dist/node/cli/cli.js', import.meta.url))

/** Polls fn until it returns a value other than undefined/false, or fails naming what it waited for. */
export async function waitFor<T> (what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const value = await fn()
      if (value !== undefined && value !== false) return value
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last !== undefined ? ` (last error: ${(last as Error).message})` : ''}`)
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}

/** A `fedmesh start` running as its own OS process, on loopback, driven through its admin API. */
export class CliNode {
  stderr = ''
  readonly exited: Promise<number | null>

  private constructor (readonly dataDir: string, readonly child: ChildProcess, public runtime: RuntimeInfo, readonly token: string) {
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)))
  }

  static async start (dataDir: string, args: string[] = [], options: { startTimeoutMs?: number } = {}): Promise<CliNode> {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build (npm test does it first)`)
    // FEDMESH_NODE_ARGS: node flags for every node process, e.g. '--cpu-prof --cpu-prof-dir=prof' for a benchmark's profiles.
    const nodeArgs = process.env.FEDMESH_NODE_ARGS?.split(' ').filter((a) => a !== '') ?? []
    const child = spawn(process.execPath, [...nodeArgs, CLI, 'start', '--data-dir', dataDir, '--listen', '/ip4/127.0.0.1/tcp/0', '--api', '127.0.0.1:0', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, FEDMESH_LOG_LEVEL: 'info' }
    })
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-20_000) })
    child.stdout.resume()
    const runtime = await waitFor(`node in ${dataDir} to start`, async () => {
      if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode}: ${stderr}`)
      const info = await readRuntime(dataDir)
      return info?.pid === child.pid ? info : undefined
    }, options.startTimeoutMs ?? 15_000, 50).catch((err: Error) => {
      child.kill('SIGKILL')   // a start that timed out leaves no process behind
      throw err
    })
    const node = new CliNode(dataDir, child, runtime, (await readToken(dataDir))!)
    child.stderr.on('data', (chunk: Buffer) => { node.stderr = (node.stderr + chunk.toString()).slice(-20_000) })
    return node
  }

  get key (): string {
    return this.runtime.key
  }

  get address (): string {
    return this.runtime.multiaddrs[0]!
  }

  async get<T> (path: string): Promise<T> {
    const res = await fetch(this.runtime.api + path, { headers: { authorization: `Bearer ${this.token}` }, signal: AbortSignal.timeout(5000) })
    if (!res.ok) throw new Error(`${path}: ${res.status}`)
    return (path === '/metrics' ? await res.text() : await res.json()) as T
  }

  async members (): Promise<Array<{ key: string, status: string, incarnation: number, org: string }>> {
    return await this.get('/v1/members')
  }

  async kill (signal: NodeJS.Signals): Promise<number | null> {
    this.child.kill(signal)
    return await this.exited
  }
}

/** Runs the built CLI to completion (killed after timeoutMs): exit code, stdout, and stderr without the JSON log lines. */
export async function runCli (args: string[], timeoutMs = 20_000): Promise<{ code: number | null, stdout: string, stderr: string, logs: string[] }> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build (npm test does it first)`)
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FEDMESH_LOG_LEVEL: 'info' }, timeout: timeoutMs, killSignal: 'SIGKILL' })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const code = await new Promise<number | null>((resolve) => child.once('close', (exitCode) => resolve(exitCode)))
  const lines = stderr.split('\n').filter((l) => l !== '')
  return { code, stdout, stderr: lines.filter((l) => !l.startsWith('{')).join('\n'), logs: lines.filter((l) => l.startsWith('{')) }
}

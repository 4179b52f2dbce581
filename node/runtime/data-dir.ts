import { randomBytes } from 'node:crypto'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'

// Files a node keeps in its data directory. The key (node.key) is handled by identity.ts, the
// database (db/) by LevelStorage.
export const CONFIG_FILE = 'config.json'
export const RUNTIME_FILE = 'runtime.json'
export const TOKEN_FILE = 'api.token'
/** The read-only token for GET /metrics only: what a Prometheus server holds instead of api.token. */
export const METRICS_TOKEN_FILE = 'metrics.token'
export const SALT_FILE = 'sanitize.salt'
export const DB_DIR = 'db'

export function defaultDataDir (): string {
  return process.env.FEDMESH_HOME ?? join(homedir(), '.fedmesh')
}

/** What a running node publishes about itself, so CLI commands can find it. */
export interface RuntimeInfo {
  pid: number
  key: string
  peerId: string
  org: string
  api: string | null
  multiaddrs: string[]
  startedAt: string
}

export async function writeRuntime (dataDir: string, info: RuntimeInfo): Promise<void> {
  const path = join(dataDir, RUNTIME_FILE)
  await writeFile(path + '.tmp', JSON.stringify(info, null, 2) + '\n', { mode: 0o600 })
  await rename(path + '.tmp', path)
}

export async function readRuntime (dataDir: string): Promise<RuntimeInfo | undefined> {
  try {
    return JSON.parse(await readFile(join(dataDir, RUNTIME_FILE), 'utf8')) as RuntimeInfo
  } catch {
    return undefined
  }
}

export async function removeRuntime (dataDir: string): Promise<void> {
  await rm(join(dataDir, RUNTIME_FILE), { force: true })
}

/** The admin API bearer token (hex), created (mode 0600) on first use. */
export async function loadOrCreateToken (dataDir: string): Promise<string> {
  return (await loadOrCreateSecret(dataDir, TOKEN_FILE)).toString('hex')
}

/** The metrics token (hex), created (mode 0600) on first use. */
export async function loadOrCreateMetricsToken (dataDir: string): Promise<string> {
  return (await loadOrCreateSecret(dataDir, METRICS_TOKEN_FILE)).toString('hex')
}

/** The per-node salt for keyed pseudonyms in the sanitizer, created (mode 0600) on first use. */
export async function loadOrCreateSalt (dataDir: string): Promise<Uint8Array> {
  return new Uint8Array(await loadOrCreateSecret(dataDir, SALT_FILE))
}

// 32 random bytes kept as hex text in a file only the owner can read.
async function loadOrCreateSecret (dataDir: string, name: string): Promise<Buffer> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  const path = join(dataDir, name)
  try {
    const secret = Buffer.from((await readFile(path, 'utf8')).trim(), 'hex')
    if (secret.length < 16) throw new Error(`${path} is malformed: expected at least 32 hex characters`)
    return secret
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    const secret = randomBytes(32)
    await writeFile(path, secret.toString('hex') + '\n', { mode: 0o600, flag: 'wx' })
    return secret
  }
}

export async function readToken (dataDir: string): Promise<string | undefined> {
  try {
    return (await readFile(join(dataDir, TOKEN_FILE), 'utf8')).trim()
  } catch {
    return undefined
  }
}

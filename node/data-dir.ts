import { randomBytes } from 'node:crypto'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'

// Files a node keeps in its data directory. The key (node.key) is handled by identity.ts, the
// database (db/) by LevelStorage.
export const CONFIG_FILE = 'config.json'
export const RUNTIME_FILE = 'runtime.json'
export const TOKEN_FILE = 'api.token'
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

/** The admin API bearer token, created (mode 0600) on first use. */
export async function loadOrCreateToken (dataDir: string): Promise<string> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  const path = join(dataDir, TOKEN_FILE)
  try {
    return (await readFile(path, 'utf8')).trim()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    const token = randomBytes(32).toString('hex')
    await writeFile(path, token + '\n', { mode: 0o600, flag: 'wx' })
    return token
  }
}

export async function readToken (dataDir: string): Promise<string | undefined> {
  try {
    return (await readFile(join(dataDir, TOKEN_FILE), 'utf8')).trim()
  } catch {
    return undefined
  }
}

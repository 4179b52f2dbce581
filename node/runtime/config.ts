import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { API_PORT_DEFAULT } from '../api/server.js'
import { CONFIG_FILE } from './data-dir.js'

// `fedmesh start` settings. Each comes, in order of precedence, from a flag, an environment variable
// (FEDMESH_<NAME>, lists comma-separated), <data-dir>/config.json, or the embedded default.
export interface StartConfig {
  /** Only for founding an org on first start; afterwards the node's certificate names its org. */
  org: string | undefined
  join: string | undefined
  listen: string[]
  /** The addresses other machines reach this node at, when not the listening ones (NAT, a load balancer). */
  announce: string[]
  bootstrap: string[]
  api: string
  capabilities: string[]
  heartbeatMs: number
  suspectAfterMs: number | undefined
  deadAfterMs: number | undefined
  /** The org's Raft group: tick length, election timeout in ticks, voters kept (learners beyond). */
  raftTickMs: number | undefined
  raftElectionTicks: number | undefined
  raftVotersMax: number | undefined
  /** Serve GET /metrics without a token to loopback clients (a Prometheus on the same machine). */
  metricsUnauthenticated: boolean
  /** The leader removes a voter silent this long (0: never) while a healthy quorum remains. */
  raftDeadVoterRemoveAfterMs: number | undefined
}

export const LISTEN_DEFAULT = ['/ip4/0.0.0.0/tcp/7400']

export const START_DEFAULTS: StartConfig = {
  org: undefined,
  join: undefined,
  listen: LISTEN_DEFAULT,
  announce: [],
  bootstrap: [],
  api: `127.0.0.1:${API_PORT_DEFAULT}`,
  capabilities: [],
  heartbeatMs: 1000,
  suspectAfterMs: undefined,
  deadAfterMs: undefined,
  raftTickMs: undefined,
  raftElectionTicks: undefined,
  raftVotersMax: undefined,
  metricsUnauthenticated: false,
  raftDeadVoterRemoveAfterMs: undefined
}

const ENV_NAMES: Record<keyof StartConfig, string> = {
  org: 'FEDMESH_ORG',
  join: 'FEDMESH_JOIN',
  listen: 'FEDMESH_LISTEN',
  announce: 'FEDMESH_ANNOUNCE',
  bootstrap: 'FEDMESH_BOOTSTRAP',
  api: 'FEDMESH_API',
  capabilities: 'FEDMESH_CAPABILITIES',
  heartbeatMs: 'FEDMESH_HEARTBEAT_MS',
  suspectAfterMs: 'FEDMESH_SUSPECT_AFTER_MS',
  deadAfterMs: 'FEDMESH_DEAD_AFTER_MS',
  raftTickMs: 'FEDMESH_RAFT_TICK_MS',
  raftElectionTicks: 'FEDMESH_RAFT_ELECTION_TICKS',
  raftVotersMax: 'FEDMESH_RAFT_VOTERS_MAX',
  metricsUnauthenticated: 'FEDMESH_METRICS_UNAUTHENTICATED',
  raftDeadVoterRemoveAfterMs: 'FEDMESH_RAFT_DEAD_VOTER_REMOVE_AFTER_MS'
}

export type StartFlags = Partial<Record<keyof StartConfig, string | string[] | undefined>>

export async function resolveStartConfig (dataDir: string, flags: StartFlags, env: NodeJS.ProcessEnv = process.env): Promise<StartConfig> {
  const file = await readConfigFile(dataDir)
  const config = { ...START_DEFAULTS }
  for (const name of Object.keys(START_DEFAULTS) as Array<keyof StartConfig>) {
    const flag = flags[name]
    const fromEnv = env[ENV_NAMES[name]]
    const raw = (Array.isArray(flag) ? (flag.length > 0 ? flag : undefined) : flag) ?? fromEnv ?? file[name]
    if (raw !== undefined) (config as Record<string, unknown>)[name] = coerce(name, raw)
  }
  return config
}

async function readConfigFile (dataDir: string): Promise<Record<string, unknown>> {
  const path = join(dataDir, CONFIG_FILE)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch {
    return {}
  }
  const value: unknown = JSON.parse(text)
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${path} must hold a JSON object`)
  for (const key of Object.keys(value)) {
    if (!(key in START_DEFAULTS)) throw new Error(`${path}: unknown setting '${key}' (known: ${Object.keys(START_DEFAULTS).join(', ')})`)
  }
  return value as Record<string, unknown>
}

const INTEGER_SETTINGS = new Set<keyof StartConfig>(['heartbeatMs', 'suspectAfterMs', 'deadAfterMs', 'raftTickMs', 'raftElectionTicks', 'raftVotersMax', 'raftDeadVoterRemoveAfterMs'])
/** Settings where 0 means "off". */
const ZERO_ALLOWED = new Set<keyof StartConfig>(['raftDeadVoterRemoveAfterMs'])

function coerce (name: keyof StartConfig, raw: unknown): unknown {
  const isList = Array.isArray(START_DEFAULTS[name])
  if (isList) {
    const items = Array.isArray(raw) ? raw : String(raw).split(',')
    return items.map((s) => String(s).trim()).filter((s) => s.length > 0)
  }
  if (typeof START_DEFAULTS[name] === 'boolean') {
    if (raw === true || raw === 'true' || raw === '1') return true
    if (raw === false || raw === 'false' || raw === '0') return false
    throw new Error(`${name} must be true or false, got '${String(raw)}'`)
  }
  if (INTEGER_SETTINGS.has(name)) {
    const n = Number(raw)
    const min = ZERO_ALLOWED.has(name) ? 0 : 1
    if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be ${min === 0 ? 'a non-negative' : 'a positive'} integer, got '${String(raw)}'`)
    return n
  }
  return String(raw)
}

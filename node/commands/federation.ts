import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { callApi } from '../api-client.js'
import { defaultDataDir } from '../data-dir.js'
import { FedmeshError } from '../errors.js'
import type { FederationStatus } from '../federation.js'
import { GENESIS_BYTES_MAX, PBFT_PARAMS_DEFAULT, createGenesis, genesisId, loadGenesis, parseGenesis, writeGenesis, type GenesisOrg } from '../genesis.js'
import { loadOrCreateIdentity, toHex } from '../identity.js'
import { verifyCertificate } from '../org.js'
import { CERT_FILE, ORG_ROOT_KEY_FILE } from '../org-identity.js'

const USAGE = `usage:
  fedmesh federation create --member NAME=ROOTKEYHEX ... [--out FILE] [--checkpoint-interval K] [--view-change-timeout-ms MS]
      on a node holding its org root (org-root.key): write a genesis listing this org and the members
      (at least 4 orgs in all), signed by this org's root; also imports it into this data dir
  fedmesh federation join FILE
      verify a genesis and import it (<data-dir>/federation.json); takes effect at the next start
  fedmesh federation show
      the imported genesis: id, orgs and root keys, PBFT parameters
  fedmesh federation status
      the running node's replica: hosting (Raft leader), view, primary, executed sequence
common: [--data-dir D] [--json]. Exchange root keys with: fedmesh id (its "org root").`

const OPTIONS = {
  'data-dir': { type: 'string' },
  json: { type: 'boolean' },
  member: { type: 'string', multiple: true },
  out: { type: 'string' },
  'checkpoint-interval': { type: 'string' },
  'view-change-timeout-ms': { type: 'string' }
} as const

class UsageError extends Error {}

/** The org this data dir's node belongs to, from its certificate (undefined before the first start). */
export async function orgOfDataDir (dataDir: string): Promise<{ org: string, root: string } | undefined> {
  const path = join(dataDir, CERT_FILE)
  if (!existsSync(path)) return undefined
  const cert = verifyCertificate(new Uint8Array(await readFile(path)), { nowMs: Date.now() })
  return { org: cert.org, root: toHex(cert.root) }
}

export async function federationCommand (args: string[]): Promise<number> {
  const [sub, ...rest] = args
  try {
    const { values, positionals } = parseArgs({ args: rest, options: OPTIONS, allowPositionals: true, strict: true })
    const dataDir = values['data-dir'] ?? defaultDataDir()
    const json = values.json === true
    switch (sub) {
      case 'create': return await create(dataDir, values, json)
      case 'join': {
        if (positionals.length !== 1) throw new UsageError('join takes exactly one genesis FILE')
        return await joinGenesis(dataDir, positionals[0]!, json)
      }
      case 'show': {
        const genesis = await loadGenesis(dataDir)
        if (genesis === undefined) throw new FedmeshError('not-federated', `no federation genesis in ${dataDir}`)
        process.stdout.write(json ? JSON.stringify({ id: genesisId(genesis), ...genesis }) + '\n' : describe(genesisId(genesis), genesis.orgs, genesis.pbft))
        return 0
      }
      case 'status': {
        const status = await callApi<FederationStatus>(dataDir, '/v1/federation')
        if (status === undefined) return 1
        const p = status.pbft
        process.stdout.write(json
          ? JSON.stringify(status) + '\n'
          : `federation ${status.id}\nreplica    ${status.replica}\nhosting    ${status.hosting ? 'yes (org raft leader)' : 'no'}\n` +
            (p !== undefined ? `view       ${p.view}${p.active ? '' : ' (changing)'}, primary ${p.primary.slice(0, 16)}\nexecuted   ${p.lastExecuted} (watermarks ${p.lowWatermark}..${p.highWatermark})\n` : '') +
            `messages   received ${status.received}, sent ${status.sent}, rejected ${JSON.stringify(status.rejected)}\n`)
        return 0
      }
      default:
        throw new UsageError(sub === undefined ? 'missing subcommand' : `unknown subcommand '${sub}'`)
    }
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      process.stderr.write(`fedmesh federation: ${(err as Error).message}\n${USAGE}\n`)
      return 2
    }
    process.stderr.write(`fedmesh federation: ${(err as Error).message}\n`)
    return 1
  }
}

async function create (dataDir: string, values: { member?: string[], out?: string, 'checkpoint-interval'?: string, 'view-change-timeout-ms'?: string }, json: boolean): Promise<number> {
  if (!existsSync(join(dataDir, ORG_ROOT_KEY_FILE))) throw new FedmeshError('not-org-root', `no ${ORG_ROOT_KEY_FILE} in ${dataDir}: create the genesis on the node that founded the org`)
  const own = await orgOfDataDir(dataDir)
  if (own === undefined) throw new FedmeshError('no-certificate', `no ${CERT_FILE} in ${dataDir}: start the node once first`)
  const { identity: root } = await loadOrCreateIdentity(dataDir, ORG_ROOT_KEY_FILE)
  if (root.publicKeyHex !== own.root) throw new FedmeshError('cert-mismatch', `${CERT_FILE} does not chain to ${ORG_ROOT_KEY_FILE}`)
  const members: GenesisOrg[] = [{ name: own.org, root: own.root }]
  for (const m of values.member ?? []) {
    const eq = m.indexOf('=')
    if (eq <= 0) throw new UsageError(`--member takes NAME=ROOTKEYHEX, got '${m}'`)
    members.push({ name: m.slice(0, eq), root: m.slice(eq + 1).toLowerCase() })
  }
  const pbft = {
    checkpointInterval: intFlag(values['checkpoint-interval'], PBFT_PARAMS_DEFAULT.checkpointInterval, '--checkpoint-interval'),
    viewChangeTimeoutMs: intFlag(values['view-change-timeout-ms'], PBFT_PARAMS_DEFAULT.viewChangeTimeoutMs, '--view-change-timeout-ms')
  }
  const genesis = createGenesis(root, members, Date.now(), pbft)
  const imported = await writeGenesis(dataDir, genesis)
  if (values.out !== undefined) await writeFile(values.out, JSON.stringify(genesis, null, 2) + '\n', { mode: 0o644 })
  const id = genesisId(genesis)
  process.stdout.write(json
    ? JSON.stringify({ id, imported, out: values.out ?? null, ...genesis }) + '\n'
    : describe(id, genesis.orgs, genesis.pbft) + `imported into ${imported}${values.out !== undefined ? `; give ${values.out} to every member: fedmesh federation join ${values.out}` : ''}\n`)
  return 0
}

async function joinGenesis (dataDir: string, file: string, json: boolean): Promise<number> {
  const text = await readFile(file, 'utf8')
  if (text.length > GENESIS_BYTES_MAX) throw new FedmeshError('genesis-invalid', `${file} is larger than ${GENESIS_BYTES_MAX} bytes`)
  const genesis = parseGenesis(text)
  const own = await orgOfDataDir(dataDir)
  if (own !== undefined && !genesis.orgs.some((o) => o.root === own.root)) {
    throw new FedmeshError('not-federated', `this node's org ${own.org} (root ${own.root}) is not in the genesis`)
  }
  const existing = await loadGenesis(dataDir).catch(() => undefined)
  if (existing !== undefined && genesisId(existing) !== genesisId(genesis)) {
    throw new FedmeshError('already-federated', `${dataDir} already holds federation ${genesisId(existing)}; use a new data dir to join another`)
  }
  const path = await writeGenesis(dataDir, genesis)
  const id = genesisId(genesis)
  process.stdout.write(json ? JSON.stringify({ id, path }) + '\n' : describe(id, genesis.orgs, genesis.pbft) + `imported into ${path} (restart the node to start its replica)\n`)
  return 0
}

function describe (id: string, orgs: GenesisOrg[], pbft: { checkpointInterval: number, viewChangeTimeoutMs: number }): string {
  return `federation ${id} (${orgs.length} orgs, tolerates ${Math.floor((orgs.length - 1) / 3)} faulty)\n` +
    orgs.map((o) => `  ${o.name.padEnd(20)} ${o.root}\n`).join('') +
    `pbft: checkpoint every ${pbft.checkpointInterval}, view change after ${pbft.viewChangeTimeoutMs} ms\n`
}

function intFlag (value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback
  if (!/^[0-9]{1,9}$/.test(value)) throw new UsageError(`${name} takes a non-negative integer`)
  return Number(value)
}

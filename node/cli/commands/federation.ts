import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { faultsTolerated } from '../../../consensus/pbft/index.js'
import { callApi } from '../../api/client.js'
import { processOutput, type CommandOutput } from './audit.js'
import { defaultDataDir } from '../../runtime/data-dir.js'
import { FedmeshError } from '../../../base/errors.js'
import type { FederationReceipt, FederationStatus } from '../../federation/federation.js'
import type { VoteBody } from '../../api/federation-routes.js'
import {
  GENESIS_BYTES_MAX, GenesisError, PBFT_PARAMS_DEFAULT, createGenesis, genesisId, loadGenesis, parseEpochFile, validateGenesis, writeEpochFile, writeGenesis,
  type EpochFile, type Genesis
} from '../../federation/genesis.js'
import type { GenesisOrg } from '../../federation/config.js'
import { loadOrCreateIdentity } from '../../runtime/key-file.js'
import { toHex } from '../../../base/bytes.js'
import { verifyCertificate } from '../../../base/org-certificate.js'
import { CERT_FILE, ORG_ROOT_KEY_FILE } from '../../org/org-identity.js'

export const USAGE = `usage:
  fedmesh federation create --member NAME=ROOTKEYHEX ... [--out FILE] [--checkpoint-interval K] [--view-change-timeout-ms MS]
      on a node holding its org root (org-root.key): write a genesis listing this org and the members
      (at least 4 orgs in all), signed by this org's root; also imports it into this data dir
  fedmesh federation join FILE
      verify a genesis and import it (<data-dir>/federation.json); or, for an org admitted later, the
      epoch file it was admitted into (from a member's export; needs the matching genesis imported
      first). Takes effect at the next start
  fedmesh federation show
      the imported genesis: id, orgs and root keys, PBFT parameters
  fedmesh federation status
      the running node's replica: hosting (Raft leader), view, primary, executed sequence
  fedmesh federation vote admit --name NAME --root ROOTKEYHEX
  fedmesh federation vote revoke --org NAME|ROOTKEYHEX
      this org's signed approval, through the running node; passes once a quorum of members approved
      (exit 0 approved/passed, 1 refused)
  fedmesh federation export [--out FILE]
      the running node's current epoch (genesis id, epoch, orgs, starting state) as an epoch file, for an admitted
      org to join with (printed, or written to FILE)
common: [--data-dir D] [--json]. Exchange root keys with: fedmesh id (its "org root").`

const OPTIONS = {
  'data-dir': { type: 'string' },
  json: { type: 'boolean' },
  member: { type: 'string', multiple: true },
  out: { type: 'string' },
  'checkpoint-interval': { type: 'string' },
  'view-change-timeout-ms': { type: 'string' },
  name: { type: 'string' },
  root: { type: 'string' },
  org: { type: 'string' }
} as const


class UsageError extends Error {}

/** The org this data dir's node belongs to, from its certificate (undefined before the first start). */
export async function orgOfDataDir (dataDir: string): Promise<{ org: string, root: string } | undefined> {
  const path = join(dataDir, CERT_FILE)
  if (!existsSync(path)) return undefined
  const cert = verifyCertificate(new Uint8Array(await readFile(path)), { nowMs: Date.now() })
  return { org: cert.org, root: toHex(cert.root) }
}

export async function federationCommand (args: string[], out: CommandOutput = processOutput): Promise<number> {
  const [sub, ...rest] = args
  try {
    const { values, positionals } = parseArgs({ args: rest, options: OPTIONS, allowPositionals: true, strict: true })
    const dataDir = values['data-dir'] ?? defaultDataDir()
    const json = values.json === true
    switch (sub) {
      case 'create': return await create(dataDir, values, json, out)
      case 'join': {
        if (positionals.length !== 1) throw new UsageError('join takes exactly one genesis or epoch FILE')
        return await joinFile(dataDir, positionals[0]!, json, out)
      }
      case 'show': {
        const genesis = await loadGenesis(dataDir)
        if (genesis === undefined) throw new FedmeshError('not-federated', `no federation genesis in ${dataDir}`)
        out.stdout(json ? JSON.stringify({ id: genesisId(genesis), ...genesis }) + '\n' : describe(genesisId(genesis), genesis.orgs, genesis.pbft))
        return 0
      }
      case 'status': {
        const status = await callApi<FederationStatus>(dataDir, '/v1/federation')
        if (status === undefined) return 1
        const p = status.pbft
        out.stdout(json
          ? JSON.stringify(status) + '\n'
          : `federation ${status.id}\nepoch      ${status.epoch} (${status.orgs.map((o) => o.name).join(', ')})${status.member ? '' : ' — this org is not a member'}\n` +
            `replica    ${status.replica}\nhosting    ${status.hosting ? 'yes (org raft leader)' : 'no'}\n` +
            (p !== undefined ? `view       ${p.view}${p.active ? '' : ' (changing)'}, primary ${p.primary.slice(0, 16)}\nexecuted   ${p.lastExecuted} (watermarks ${p.lowWatermark}..${p.highWatermark})\n` : '') +
            `messages   received ${status.received}, sent ${status.sent}, rejected ${JSON.stringify(status.rejected)}\n`)
        return 0
      }
      case 'vote': return await vote(dataDir, positionals, values, json, out)
      case 'export': return await exportEpoch(dataDir, values.out, json, out)
      default:
        throw new UsageError(sub === undefined ? 'missing subcommand' : `unknown subcommand '${sub}'`)
    }
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true) {
      out.stderr(`fedmesh federation: ${(err as Error).message}\n${USAGE}\n`)
      return 2
    }
    out.stderr(`fedmesh federation: ${(err as Error).message}\n`)
    return 1
  }
}

async function vote (dataDir: string, positionals: string[], values: { name?: string, root?: string, org?: string }, json: boolean, out: CommandOutput): Promise<number> {
  const [action, ...extra] = positionals
  if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(' ')}`)
  let body: VoteBody
  if (action === 'admit') {
    if (values.name === undefined || values.root === undefined || values.org !== undefined) throw new UsageError('vote admit takes --name NAME --root ROOTKEYHEX')
    body = { action, name: values.name, root: values.root }
  } else if (action === 'revoke') {
    if (values.org === undefined || values.name !== undefined || values.root !== undefined) throw new UsageError('vote revoke takes --org NAME|ROOTKEYHEX')
    body = { action, org: values.org }
  } else {
    throw new UsageError('vote takes admit or revoke')
  }
  const receipt = await callApi<FederationReceipt>(dataDir, '/v1/federation/votes', { body })
  if (receipt === undefined) return 1
  const subject = body.action === 'admit' ? `admit ${body.name} (${body.root.slice(0, 16)})` : `revoke ${body.org}`
  out.stdout(json
    ? JSON.stringify(receipt) + '\n'
    : `vote ${subject}: ${receipt.outcome}${receipt.reason !== '' ? ` (${receipt.reason})` : ''} at epoch ${receipt.epoch}, seq ${receipt.seq}` +
      `${receipt.outcome === 'passed' ? ' — the federation enters a new epoch' : ''}\n`)
  return receipt.accepted ? 0 : 1
}

async function exportEpoch (dataDir: string, file: string | undefined, json: boolean, out: CommandOutput): Promise<number> {
  const answer = await callApi<unknown>(dataDir, '/v1/federation/epoch')
  if (answer === undefined) return 1
  const epoch = parseEpochFile(answer)
  const text = JSON.stringify(epoch, null, 2) + '\n'
  if (file === undefined) {
    out.stdout(json ? JSON.stringify(epoch) + '\n' : text)
    return 0
  }
  await writeFile(file, text, { mode: 0o644 })
  out.stdout(json
    ? JSON.stringify({ out: file, ...epoch }) + '\n'
    : `epoch ${epoch.epoch} of federation ${epoch.genesis} (${epoch.orgs.length} orgs) written to ${file}; the admitted org imports the genesis and then: fedmesh federation join ${file}\n`)
  return 0
}

async function create (dataDir: string, values: { member?: string[], out?: string, 'checkpoint-interval'?: string, 'view-change-timeout-ms'?: string }, json: boolean, out: CommandOutput): Promise<number> {
  if (!existsSync(join(dataDir, ORG_ROOT_KEY_FILE))) throw new FedmeshError('not-org-root', `no ${ORG_ROOT_KEY_FILE} in ${dataDir}: create the genesis on the node that founded the org`)
  const own = await orgOfDataDir(dataDir)
  if (own === undefined) throw new FedmeshError('no-certificate', `no ${CERT_FILE} in ${dataDir}: start the node once first`)
  const { identity: root } = await loadOrCreateIdentity(dataDir, ORG_ROOT_KEY_FILE)
  if (root.publicKeyHex !== own.root) throw new FedmeshError('cert-mismatch', `${CERT_FILE} does not chain to ${ORG_ROOT_KEY_FILE}`)
  const members: GenesisOrg[] = [{ name: own.org, root: own.root }]
  for (const m of values.member ?? []) {
    const eq = m.indexOf('=')
    if (eq <= 0) throw new UsageError(`--member takes NAME=ROOTKEYHEX, got '${m}'`)
    const member = { name: m.slice(0, eq), root: m.slice(eq + 1).toLowerCase() }
    // This node's own org is always a member: listing it again is harmless, listing it otherwise is not.
    if (member.name === own.org && member.root === own.root) continue
    if (member.name === own.org || member.root === own.root) {
      throw new UsageError(`--member ${m}: this node's org is ${own.org} (root ${own.root}) and is a member already; list only the other orgs`)
    }
    members.push(member)
  }
  const pbft = {
    checkpointInterval: intFlag(values['checkpoint-interval'], PBFT_PARAMS_DEFAULT.checkpointInterval, '--checkpoint-interval'),
    viewChangeTimeoutMs: intFlag(values['view-change-timeout-ms'], PBFT_PARAMS_DEFAULT.viewChangeTimeoutMs, '--view-change-timeout-ms')
  }
  const genesis = createGenesis(root, members, Date.now(), pbft)
  const imported = await writeGenesis(dataDir, genesis)
  if (values.out !== undefined) await writeFile(values.out, JSON.stringify(genesis, null, 2) + '\n', { mode: 0o644 })
  const id = genesisId(genesis)
  out.stdout(json
    ? JSON.stringify({ id, imported, out: values.out ?? null, ...genesis }) + '\n'
    : describe(id, genesis.orgs, genesis.pbft) + `imported into ${imported}${values.out !== undefined ? `; give ${values.out} to every member: fedmesh federation join ${values.out}` : ''}\n`)
  return 0
}

/** Imports a genesis, or (for an org admitted later) the epoch file it was admitted into. */
async function joinFile (dataDir: string, file: string, json: boolean, out: CommandOutput): Promise<number> {
  const text = await readFile(file, 'utf8')
  if (text.length > GENESIS_BYTES_MAX) throw new GenesisError(`${file} is larger than ${GENESIS_BYTES_MAX} bytes`)
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new GenesisError(`${file} is not JSON`)
  }
  const isEpoch = typeof value === 'object' && value !== null && !('v' in value) && 'epoch' in value
  return isEpoch ? await joinEpoch(dataDir, parseEpochFile(value), json, out) : await joinGenesis(dataDir, validateGenesis(value), json, out)
}

async function joinGenesis (dataDir: string, genesis: Genesis, json: boolean, out: CommandOutput): Promise<number> {
  const root = await orgRootOfDataDir(dataDir)
  // An org admitted after the genesis imports it first, then the epoch file it was admitted into.
  const admittedLater = root !== undefined && !genesis.orgs.some((o) => o.root === root)
  const existing = await loadGenesis(dataDir).catch(() => undefined)
  if (existing !== undefined && genesisId(existing) !== genesisId(genesis)) {
    throw new FedmeshError('already-federated', `${dataDir} already holds federation ${genesisId(existing)}; use a new data dir to join another`)
  }
  const path = await writeGenesis(dataDir, genesis)
  const id = genesisId(genesis)
  out.stdout(json
    ? JSON.stringify({ id, path, member: !admittedLater }) + '\n'
    : describe(id, genesis.orgs, genesis.pbft) + `imported into ${path} ` +
      (admittedLater ? '(this org is not in the genesis: import the epoch file it was admitted into next, fedmesh federation join EPOCH.json)\n' : '(restart the node to start its replica)\n'))
  return 0
}

async function joinEpoch (dataDir: string, epoch: EpochFile, json: boolean, out: CommandOutput): Promise<number> {
  const genesis = await loadGenesis(dataDir)
  if (genesis === undefined) throw new FedmeshError('not-federated', `no federation genesis in ${dataDir}: join the genesis file first, then the epoch file`)
  if (genesisId(genesis) !== epoch.genesis) throw new FedmeshError('genesis-mismatch', `the epoch file belongs to federation ${epoch.genesis}, this data dir to ${genesisId(genesis)}`)
  const root = await orgRootOfDataDir(dataDir)
  if (root === undefined) throw new FedmeshError('no-certificate', `no ${CERT_FILE} or ${ORG_ROOT_KEY_FILE} in ${dataDir}: cannot tell this node's org`)
  if (!epoch.orgs.some((o) => o.root === root)) throw new FedmeshError('not-federated', `this node's org (root ${root}) is not a member of epoch ${epoch.epoch}`)
  const path = await writeEpochFile(dataDir, epoch)
  out.stdout(json
    ? JSON.stringify({ id: epoch.genesis, epoch: epoch.epoch, path }) + '\n'
    : `federation ${epoch.genesis}, epoch ${epoch.epoch} (${epoch.orgs.length} orgs)\n` + epoch.orgs.map((o) => `  ${o.name.padEnd(20)} ${o.root}\n`).join('') +
      `imported into ${path} (restart the node to start its replica)\n`)
  return 0
}


/** This data dir's org root key: from its certificate or, before the first start, its org root key file. */
export async function orgRootOfDataDir (dataDir: string): Promise<string | undefined> {
  const own = await orgOfDataDir(dataDir)
  if (own !== undefined) return own.root
  // The file exists, so this only reads it.
  if (existsSync(join(dataDir, ORG_ROOT_KEY_FILE))) return (await loadOrCreateIdentity(dataDir, ORG_ROOT_KEY_FILE)).identity.publicKeyHex
  return undefined
}

function describe (id: string, orgs: GenesisOrg[], pbft: { checkpointInterval: number, viewChangeTimeoutMs: number }): string {
  return `federation ${id} (${orgs.length} orgs, tolerates ${faultsTolerated(orgs.length)} faulty)\n` +
    orgs.map((o) => `  ${o.name.padEnd(20)} ${o.root}\n`).join('') +
    `pbft: checkpoint every ${pbft.checkpointInterval}, view change after ${pbft.viewChangeTimeoutMs} ms\n`
}

function intFlag (value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback
  if (!/^[0-9]{1,9}$/.test(value)) throw new UsageError(`${name} takes a non-negative integer`)
  return Number(value)
}

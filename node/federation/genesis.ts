import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { PBFT_REPLICAS_MAX, checkpointIntervalFits, sha256 } from '../../consensus/pbft/index.js'
import { encodeCanonical } from '../../base/codec.js'
import { FedmeshError } from '../../base/errors.js'
import { fromHex, toHex } from '../../base/bytes.js'
import { verify, type Signer } from '../../base/ed25519.js'
import { type GenesisOrg, validConfig } from './config.js'
import { ORG_NAME_PATTERN } from '../../base/org-certificate.js'

// The federation genesis: the founding organisations (name + root public key, the analogue of a
// SPIFFE trust bundle) and the PBFT parameters, signed by the creating org's root. Each founding org
// imports it explicitly (`fedmesh federation join`), so a genesis signed by a stranger changes
// nothing: a node believes only the file its operator put in its data dir. JSON on disk (operators
// read and exchange it); the signature is over canonical CBOR of the same fields.

export const GENESIS_FILE = 'federation.json'
/** For an org admitted after the genesis: the epoch it was admitted into (`fedmesh federation export`). */
export const EPOCH_FILE = 'federation-epoch.json'
export const GENESIS_BYTES_MAX = 64 * 1024
const GENESIS_DOMAIN = 'fedmesh/genesis/v1'
const ORGS_MIN = 4
const KEY_HEX = /^[0-9a-f]{64}$/
const SIGNATURE_HEX = /^[0-9a-f]{128}$/

export interface PbftParams { checkpointInterval: number, viewChangeTimeoutMs: number }
export interface Genesis {
  v: 1
  /** Sorted by root key: the replica order (primary of view v = orgs[v mod n]). */
  orgs: GenesisOrg[]
  pbft: PbftParams
  createdBy: string
  createdAtMs: number
  signature: string
}

export const PBFT_PARAMS_DEFAULT: PbftParams = { checkpointInterval: 16, viewChangeTimeoutMs: 2000 }

export class GenesisError extends FedmeshError {
  constructor (message: string) {
    super('genesis-invalid', message)
    this.name = 'GenesisError'
  }
}

export function createGenesis (root: Signer, orgs: GenesisOrg[], createdAtMs: number, pbft: PbftParams = PBFT_PARAMS_DEFAULT): Genesis {
  const unsigned = { v: 1 as const, orgs: [...orgs].sort((a, b) => a.root < b.root ? -1 : a.root > b.root ? 1 : 0), pbft, createdBy: toHex(root.publicKey), createdAtMs }
  const genesis = { ...unsigned, signature: toHex(root.sign(signingBytes(unsigned))) }
  return validateGenesis(genesis)
}

/** Checks an untrusted genesis whole: shape, bounds, distinct orgs, creator among them, signature. */
export function validateGenesis (value: unknown): Genesis {
  if (typeof value !== 'object' || value === null) throw new GenesisError('genesis is not an object')
  const g = value as Record<string, unknown>
  if (g.v !== 1) throw new GenesisError('unknown genesis version')
  if (!Array.isArray(g.orgs) || g.orgs.length < ORGS_MIN || g.orgs.length > PBFT_REPLICAS_MAX) throw new GenesisError(`a federation has ${ORGS_MIN}..${PBFT_REPLICAS_MAX} orgs (PBFT tolerates f = ⌊(n−1)/3⌋ Byzantine orgs)`)
  const orgs = g.orgs.map((o: unknown): GenesisOrg => {
    const { name, root } = (typeof o === 'object' && o !== null ? o : {}) as Record<string, unknown>
    if (typeof name !== 'string' || !ORG_NAME_PATTERN.test(name)) throw new GenesisError(`org name must match ${ORG_NAME_PATTERN}`)
    if (typeof root !== 'string' || !KEY_HEX.test(root)) throw new GenesisError(`org ${name}: root must be 64 lowercase hex digits`)
    return { name, root }
  })
  for (const [i, o] of orgs.entries()) {
    const twin = orgs.findIndex((other, j) => j < i && (other.name === o.name || other.root === o.root))
    if (twin >= 0) {
      const same = orgs[twin]!.name === o.name ? `the name ${o.name}` : `the root ${o.root}`
      throw new GenesisError(`orgs ${orgs[twin]!.name} and ${o.name} share ${same}: each org is listed once, with its own name and root key`)
    }
  }
  if (orgs.some((o, i) => i > 0 && orgs[i - 1]!.root > o.root)) throw new GenesisError('orgs must be sorted by root key')
  const { checkpointInterval, viewChangeTimeoutMs } = (typeof g.pbft === 'object' && g.pbft !== null ? g.pbft : {}) as Record<string, unknown>
  if (!isInt(checkpointInterval, 1, 256) || !isInt(viewChangeTimeoutMs, 100, 600_000)) throw new GenesisError('pbft needs checkpointInterval 1..256 and viewChangeTimeoutMs 100..600000')
  if (!checkpointIntervalFits(orgs.length, checkpointInterval)) throw new GenesisError(`with ${orgs.length} orgs a view change at checkpointInterval ${checkpointInterval} would not fit a message: lower it`)
  if (typeof g.createdBy !== 'string' || !orgs.some((o) => o.root === g.createdBy)) throw new GenesisError('the creating org must be a member')
  if (!isInt(g.createdAtMs, 0, Number.MAX_SAFE_INTEGER)) throw new GenesisError('createdAtMs must be a time')
  if (typeof g.signature !== 'string' || !SIGNATURE_HEX.test(g.signature)) throw new GenesisError('signature must be 128 hex digits')
  const genesis: Genesis = { v: 1, orgs, pbft: { checkpointInterval, viewChangeTimeoutMs }, createdBy: g.createdBy, createdAtMs: g.createdAtMs, signature: g.signature }
  if (!verify(fromHex(genesis.createdBy), signingBytes(genesis), fromHex(genesis.signature))) throw new GenesisError('genesis is not signed by its creating org')
  return genesis
}

/** A short, stable name of the federation: messages of another federation are ignored. */
export function genesisId (g: Genesis): string {
  return toHex(sha256(signingBytes(g))).slice(0, 32)
}

export function parseGenesis (text: string): Genesis {
  if (text.length > GENESIS_BYTES_MAX) throw new GenesisError(`genesis larger than ${GENESIS_BYTES_MAX} bytes`)
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new GenesisError('genesis is not JSON')
  }
  return validateGenesis(value)
}

export async function loadGenesis (dataDir: string): Promise<Genesis | undefined> {
  const path = join(dataDir, GENESIS_FILE)
  if (!existsSync(path)) return undefined
  return parseGenesis(await readFile(path, 'utf8'))
}

export async function writeGenesis (dataDir: string, g: Genesis): Promise<string> {
  const path = join(dataDir, GENESIS_FILE)
  await writeFile(path, JSON.stringify(g, null, 2) + '\n', { mode: 0o644 })
  return path
}

function signingBytes (g: Omit<Genesis, 'signature'>): Uint8Array {
  return encodeCanonical([GENESIS_DOMAIN, g.orgs.map((o) => [o.name, o.root]), [g.pbft.checkpointInterval, g.pbft.viewChangeTimeoutMs], g.createdBy, g.createdAtMs])
}

function isInt (x: unknown, min: number, max: number): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= min && x <= max
}

/**
 * The epoch an admitted org starts from, as a member exported it: its members and (base64) the
 * federation state core as the epoch began (the open federated tasks it carries over).
 */
export interface EpochFile { genesis: string, epoch: number, orgs: GenesisOrg[], core?: string }

export async function loadEpochFile (dataDir: string): Promise<EpochFile | undefined> {
  const path = join(dataDir, EPOCH_FILE)
  if (!existsSync(path)) return undefined
  const text = await readFile(path, 'utf8')
  if (text.length > GENESIS_BYTES_MAX) throw new GenesisError(`${EPOCH_FILE} larger than ${GENESIS_BYTES_MAX} bytes`)
  try {
    return parseEpochFile(JSON.parse(text))
  } catch (err) {
    throw new GenesisError(`${EPOCH_FILE}: ${(err as Error).message}`)
  }
}

/** Checks an untrusted epoch file: a genesis id, an epoch number, a valid member list and the epoch's starting state core. */
export function parseEpochFile (value: unknown): EpochFile {
  const { genesis, epoch, orgs, core } = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>
  if (!Array.isArray(orgs)) throw new GenesisError('an epoch file holds genesis, epoch and orgs')
  if (core !== undefined && (typeof core !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(core))) throw new GenesisError('bad epoch file: core must be base64')
  try {
    const config = validConfig({ genesis: genesis as string, epoch: epoch as number, orgs: orgs.map((o: unknown) => ({ name: (o as GenesisOrg)?.name, root: (o as GenesisOrg)?.root })) })
    return { genesis: config.genesis, epoch: config.epoch, orgs: config.orgs, ...(core !== undefined ? { core } : {}) }
  } catch (err) {
    throw new GenesisError(`bad epoch file: ${(err as Error).message}`)
  }
}

export async function writeEpochFile (dataDir: string, e: EpochFile): Promise<string> {
  const path = join(dataDir, EPOCH_FILE)
  await writeFile(path, JSON.stringify(e, null, 2) + '\n', { mode: 0o644 })
  return path
}

import { PBFT_REPLICAS_MAX, sha256 } from '../../consensus/pbft/index.js'
import { encodeCanonical } from '../../base/codec.js'
import { FedmeshError } from '../../base/errors.js'
import { toHex } from '../../base/bytes.js'
import { ORG_NAME_PATTERN } from '../../base/org-certificate.js'

// One federation epoch's configuration: its genesis id, epoch number and member orgs. Below both the
// genesis and epoch files (genesis.ts) and the replicated federation state (state.ts), which each
// validate one, so neither imports the other.

export interface GenesisOrg { name: string, root: string }
export interface FederationConfig { genesis: string, epoch: number, orgs: GenesisOrg[] }

/** Anything the federation state refuses to decode or apply, its config included. */
export class FederationStateError extends FedmeshError {}

export const GENESIS_ID = /^[0-9a-f]{32}$/
export const KEY_HEX = /^[0-9a-f]{64}$/

/** The PBFT instance of an epoch: the genesis id itself for epoch 0. */
export function instanceId (config: FederationConfig): string {
  if (config.epoch === 0) return config.genesis
  return toHex(sha256(encodeCanonical(['fedmesh/federation-epoch/v1', config.genesis, config.epoch, config.orgs.map((o) => [o.name, o.root])]))).slice(0, 32)
}

export function encodeConfig (c: FederationConfig): unknown[] {
  return [c.genesis, c.epoch, c.orgs.map((o) => [o.name, o.root])]
}

export function decodeConfig (v: unknown): FederationConfig {
  if (!Array.isArray(v) || v.length !== 3 || !Array.isArray(v[2])) throw new FederationStateError('federation-config-malformed', 'a config holds [genesis, epoch, orgs]')
  return validConfig({ genesis: v[0] as string, epoch: v[1] as number, orgs: (v[2] as unknown[][]).map((o) => ({ name: o?.[0], root: o?.[1] }) as GenesisOrg) })
}

export function validConfig (c: FederationConfig): FederationConfig {
  if (typeof c.genesis !== 'string' || !GENESIS_ID.test(c.genesis) || !Number.isSafeInteger(c.epoch) || c.epoch < 0 || c.orgs.length < 1 || c.orgs.length > PBFT_REPLICAS_MAX ||
    !c.orgs.every((o, i) => typeof o.name === 'string' && ORG_NAME_PATTERN.test(o.name) && typeof o.root === 'string' && KEY_HEX.test(o.root) && (i === 0 || c.orgs[i - 1]!.root < o.root))) {
    throw new FederationStateError('federation-config-malformed', 'a config names 1..n orgs sorted by root key')
  }
  return c
}

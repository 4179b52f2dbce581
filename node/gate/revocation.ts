import assert from 'node:assert/strict'
import { isPeerKey } from '../../membership/trust.js'
import { decodeCanonical, encodeCanonical } from '../../base/codec.js'
import { FedmeshError } from '../../base/errors.js'
import { silentLogger, type Logger } from '../../base/log.js'
import { ORG_NAME_PATTERN } from '../../base/org-certificate.js'
import type { Storage } from '../../base/storage.js'

// Organisations the federation revoked (by org root key, hex) and the nodes known to belong to
// them. Every gate of the node asks this list: membership (announcements whose certificate chains
// to a revoked root), capability requests, the libp2p connection gater (peers seen with such a
// certificate) and the federation's PBFT intake. One record per org, `revoked/<root>`, canonical
// CBOR { org, at, peers }, written in an atomic batch and loaded at start, so a restarted node
// refuses at once, before the federation re-applies its board. Refusals are counted, never
// audited one by one: the revocation itself is the one audit entry.

export const REVOKED_KEY_PREFIX = 'revoked/'
export const REVOKED_ORGS_MAX = 1024
/** Node keys remembered per revoked org for the connection gater (its announcements are refused anyway). */
export const REVOKED_PEERS_PER_ORG_MAX = 256
const RECORD_BYTES_MAX = 32 * 1024

export const REFUSAL_PATHS = ['announcement', 'capability', 'connection', 'federation'] as const
export type RefusalPath = typeof REFUSAL_PATHS[number]

export class RevocationError extends FedmeshError {
  constructor (code: 'org-revoked' | 'revocation-invalid' | 'revocation-full' | 'revocation-own-org', message: string) {
    super(code, message)
    this.name = 'RevocationError'
  }
}

export interface RevokedOrg {
  root: string
  org: string
  revokedAtMs: number
  /** Node keys seen with a certificate chaining to root (at most REVOKED_PEERS_PER_ORG_MAX). */
  peers: string[]
}

export class RevocationList {
  readonly #orgs = new Map<string, { org: string, revokedAtMs: number, peers: Set<string> }>()
  readonly #rootOfPeer = new Map<string, string>()
  readonly #refusals: Record<RefusalPath, number> = { announcement: 0, capability: 0, connection: 0, federation: 0 }
  readonly #storage: Storage
  #tail: Promise<unknown> = Promise.resolve()

  private constructor (storage: Storage) {
    this.#storage = storage
  }

  /** Loads every `revoked/` record; a corrupt one is logged and skipped (the federation re-applies it). */
  static async load (init: { storage: Storage, logger?: Logger }): Promise<RevocationList> {
    const list = new RevocationList(init.storage)
    const logger = init.logger ?? silentLogger
    for await (const [key, value] of init.storage.iterate(REVOKED_KEY_PREFIX)) {
      try {
        const record = parseRecord(key.slice(REVOKED_KEY_PREFIX.length), value)
        list.add(record.root, record.org, record.revokedAtMs)
        for (const peer of record.peers) list.addPeer(record.root, peer)
      } catch (err) {
        logger.warn({ key, err: (err as Error).message }, 'skipping corrupt revocation record')
      }
    }
    return list
  }

  get size (): number {
    return this.#orgs.size
  }

  isOrgRevoked (root: string): boolean {
    return this.#orgs.has(root)
  }

  /** The revoked root a node key is known to belong to. */
  rootOfPeer (peer: string): string | undefined {
    return this.#rootOfPeer.get(peer)
  }

  /** Adds a revoked org in memory; false if it was already revoked. Throws on invalid input or when full. */
  add (root: string, org: string, revokedAtMs: number): boolean {
    assertRevocation(root, org, revokedAtMs)
    if (this.#orgs.has(root)) return false
    if (this.#orgs.size >= REVOKED_ORGS_MAX) throw new RevocationError('revocation-full', `more than ${REVOKED_ORGS_MAX} revoked organisations`)
    this.#orgs.set(root, { org, revokedAtMs, peers: new Set() })
    return true
  }

  /** Remembers that peer belongs to the revoked org root; false if known already or the org's set is full. */
  addPeer (root: string, peer: string): boolean {
    const entry = this.#orgs.get(root)
    assert.ok(entry !== undefined, `org ${root} is not revoked`)
    if (!isPeerKey(peer)) throw new RevocationError('revocation-invalid', 'peer must be 64 lowercase hex')
    if (entry.peers.has(peer) || entry.peers.size >= REVOKED_PEERS_PER_ORG_MAX) return false
    entry.peers.add(peer)
    this.#rootOfPeer.set(peer, root)
    return true
  }

  /** Counts one refusal on a gate (the node's metrics read these counts). */
  count (path: RefusalPath): void {
    this.#refusals[path]++
  }

  refusals (): Readonly<Record<RefusalPath, number>> {
    return { ...this.#refusals }
  }

  list (): RevokedOrg[] {
    return [...this.#orgs].map(([root, e]) => ({ root, org: e.org, revokedAtMs: e.revokedAtMs, peers: [...e.peers].sort() }))
      .sort((a, b) => a.root < b.root ? -1 : 1)
  }

  /** Writes root's record durably (writes are serialised, so the last one holds the newest peers). */
  async persist (root: string): Promise<void> {
    const run = this.#tail.then(async () => {
      const entry = this.#orgs.get(root)
      assert.ok(entry !== undefined, `org ${root} is not revoked`)
      const value = encodeCanonical({ org: entry.org, at: entry.revokedAtMs, peers: [...entry.peers].sort() })
      await this.#storage.batch([{ type: 'put', key: REVOKED_KEY_PREFIX + root, value }])
    })
    this.#tail = run.catch(() => undefined)
    await run
  }
}

function assertRevocation (root: string, org: string, revokedAtMs: number): void {
  if (!isPeerKey(root)) throw new RevocationError('revocation-invalid', 'org root must be 64 lowercase hex')
  if (!ORG_NAME_PATTERN.test(org)) throw new RevocationError('revocation-invalid', `organisation name must match ${ORG_NAME_PATTERN}`)
  if (!Number.isSafeInteger(revokedAtMs) || revokedAtMs < 0) throw new RevocationError('revocation-invalid', 'revokedAtMs must be a non-negative integer')
}

function parseRecord (root: string, bytes: Uint8Array): RevokedOrg {
  if (bytes.length > RECORD_BYTES_MAX) throw new RevocationError('revocation-invalid', `record is ${bytes.length} bytes`)
  const value = decodeCanonical(bytes, (reason) => new RevocationError('revocation-invalid', reason)) as Record<string, unknown> | null
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new RevocationError('revocation-invalid', 'record must be a map')
  const { org, at, peers } = value
  if (typeof org !== 'string' || typeof at !== 'number') throw new RevocationError('revocation-invalid', 'record needs org and at')
  assertRevocation(root, org, at)
  if (!Array.isArray(peers) || peers.length > REVOKED_PEERS_PER_ORG_MAX || !peers.every(isPeerKey)) {
    throw new RevocationError('revocation-invalid', `record peers must be at most ${REVOKED_PEERS_PER_ORG_MAX} peer keys`)
  }
  return { root, org, revokedAtMs: at, peers }
}

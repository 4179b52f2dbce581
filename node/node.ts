import './polyfills.js'
import { EventEmitter } from 'node:events'
import { join } from 'node:path'
import { decodeCanonical, encodeCanonical } from './codec.js'
import { API_PORT_DEFAULT, startApi, type ApiServer } from './api.js'
import type { Clock, Rng } from './clock.js'
import { DB_DIR, loadOrCreateToken, removeRuntime, writeRuntime } from './data-dir.js'
import { loadOrCreateIdentity, type NodeIdentity } from './identity.js'
import { LevelStorage } from './level-storage.js'
import { Libp2pTransport } from './libp2p-transport.js'
import { createLogger, type Logger } from './log.js'
import { NodeMetrics } from './metrics.js'
import type { Storage } from './storage.js'
import { cryptoRng, systemClock } from './system-clock.js'
import { Membership } from '../membership/membership.js'
import type { Member, MemberChange, MemberStatus } from '../membership/membership-core.js'

// FedmeshNode: the library API. Composes identity, storage, transport, membership and the admin
// API; owns their lifecycle. Everything that touches the world is created here and injected.
export interface FedmeshNodeInit {
  dataDir: string
  org?: string
  listen?: string[]
  bootstrap?: string[]
  /** host:port of the admin API, or null for none. */
  api?: { host: string, port: number } | null
  capabilities?: string[]
  heartbeatMs?: number
  suspectAfterMs?: number
  deadAfterMs?: number
  logger?: Logger
  clock?: Clock
  rng?: Rng
}

export interface NodeStatus {
  key: string
  peerId: string
  org: string
  incarnation: number
  multiaddrs: string[]
  peers: number
  members: Record<MemberStatus, number>
  uptimeMs: number
}

export interface MemberView extends Omit<Member, 'lastHeardMs' | 'sinceMs'> {
  self: boolean
  lastHeardAgoMs: number
}

export interface FedmeshNodeEvents {
  'member:change': [MemberChange]
}

const INCARNATION_KEY = 'node/incarnation'
export const LISTEN_DEFAULT = ['/ip4/0.0.0.0/tcp/7400']

export class FedmeshNode extends EventEmitter<FedmeshNodeEvents> {
  readonly metrics: NodeMetrics
  #api?: ApiServer
  #stopBootstrap?: () => void
  readonly #startedMs: number

  private constructor (
    readonly dataDir: string,
    readonly org: string,
    readonly identity: NodeIdentity,
    readonly storage: Storage,
    readonly transport: Libp2pTransport,
    readonly membership: Membership,
    readonly logger: Logger,
    readonly clock: Clock
  ) {
    super()
    this.#startedMs = clock.monotonicMs()
    this.metrics = new NodeMetrics({ peers: () => transport.connectedPeers().length, membersByStatus: () => this.#countByStatus() })
    membership.on('change', (change) => this.emit('member:change', change))
    membership.on('received', ({ verdict, reason, latencyMs }) => {
      this.metrics.envelopes.inc({ result: verdict === 'accept' ? 'accepted' : verdict === 'ignore' ? 'ignored' : 'rejected', reason: reason ?? '' })
      if (latencyMs !== undefined) this.metrics.gossipLatency.observe(Math.max(0, latencyMs) / 1000)
    })
  }

  static async start (init: FedmeshNodeInit): Promise<FedmeshNode> {
    const logger = init.logger ?? createLogger('fedmesh')
    const clock = init.clock ?? systemClock
    const rng = init.rng ?? cryptoRng
    const org = init.org ?? 'default'
    const { identity } = await loadOrCreateIdentity(init.dataDir)
    const storage = await LevelStorage.open(join(init.dataDir, DB_DIR))
    let transport: Libp2pTransport | undefined
    try {
      const incarnation = await nextIncarnation(storage)
      transport = await Libp2pTransport.create({ identity, listen: init.listen ?? LISTEN_DEFAULT, logger })
      const t = transport
      const membership = new Membership({
        signer: identity, org, transport: t, clock, rng, logger, incarnation,
        addrs: () => t.multiaddrs(),
        capabilities: init.capabilities,
        heartbeatMs: init.heartbeatMs,
        suspectAfterMs: init.suspectAfterMs,
        deadAfterMs: init.deadAfterMs
      })
      const node = new FedmeshNode(init.dataDir, org, identity, storage, t, membership, logger, clock)
      membership.start()
      node.#keepBootstrapped(init.bootstrap ?? [])
      if (init.api !== null) await node.#startApi(init.api ?? { host: '127.0.0.1', port: API_PORT_DEFAULT })
      await writeRuntime(init.dataDir, {
        pid: process.pid, key: identity.publicKeyHex, peerId: t.libp2p.peerId.toString(), org,
        api: node.apiUrl ?? null, multiaddrs: t.multiaddrs(), startedAt: new Date(clock.wallMs()).toISOString()
      })
      logger.info({ key: identity.publicKeyHex, org, incarnation, multiaddrs: t.multiaddrs(), api: node.apiUrl }, 'node started')
      return node
    } catch (err) {
      await transport?.stop()
      await storage.close()
      throw err
    }
  }

  get key (): string {
    return this.identity.publicKeyHex
  }

  get peerId (): string {
    return this.transport.libp2p.peerId.toString()
  }

  get apiUrl (): string | undefined {
    return this.#api?.url
  }

  multiaddrs (): string[] {
    return this.transport.multiaddrs()
  }

  /** Every known member including this node, ordered by key. */
  members (): MemberView[] {
    const nowMs = this.clock.monotonicMs()
    const self: MemberView = {
      key: this.key, org: this.org, addrs: this.multiaddrs(), capabilities: [], incarnation: this.membership.incarnation,
      seq: 0, status: 'alive', self: true, lastHeardAgoMs: 0
    }
    const others = this.membership.members().map(({ lastHeardMs, sinceMs: _since, ...m }) => ({ ...m, self: false, lastHeardAgoMs: Math.round(nowMs - lastHeardMs) }))
    return [self, ...others].sort((a, b) => a.key < b.key ? -1 : 1)
  }

  status (): NodeStatus {
    return {
      key: this.key,
      peerId: this.peerId,
      org: this.org,
      incarnation: this.membership.incarnation,
      multiaddrs: this.multiaddrs(),
      peers: this.transport.connectedPeers().length,
      members: this.#countByStatus(),
      uptimeMs: Math.round(this.clock.monotonicMs() - this.#startedMs)
    }
  }

  /** Graceful stop: announce leave, close the API, the transport and the database. */
  async stop (): Promise<void> {
    this.#stopBootstrap?.()
    await this.membership.stop()
    await this.#api?.close()
    await this.transport.stop()
    await this.storage.close()
    await removeRuntime(this.dataDir)
    this.logger.info({ key: this.key }, 'node stopped')
  }

  // Dial the bootstrap addresses at start and again whenever the node finds itself alone (the
  // bootstrap node may start later, or restart).
  #keepBootstrapped (addresses: string[]): void {
    if (addresses.length === 0) return
    const dialAll = (): void => {
      if (this.transport.connectedPeers().length > 0) return
      for (const address of addresses) {
        this.transport.dial([address]).catch((err) => this.logger.warn({ address, err: (err as Error).message }, 'bootstrap dial failed'))
      }
    }
    dialAll()
    this.#stopBootstrap = this.clock.every(this.membership.heartbeatMs, dialAll)
  }

  #countByStatus (): Record<MemberStatus, number> {
    const counts: Record<MemberStatus, number> = { alive: 1, suspect: 0, dead: 0, left: 0 }
    for (const m of this.membership.members()) counts[m.status]++
    return counts
  }

  async #startApi (address: { host: string, port: number }): Promise<void> {
    this.#api = await startApi({
      ...address,
      token: await loadOrCreateToken(this.dataDir),
      logger: this.logger,
      routes: {
        'GET /v1/status': async () => this.status(),
        'GET /v1/members': async () => this.members(),
        'GET /metrics': async () => ({ contentType: this.metrics.registry.contentType, body: await this.metrics.registry.metrics() })
      }
    })
  }
}

/** Increments and durably stores the incarnation before we announce it. */
async function nextIncarnation (storage: Storage): Promise<number> {
  const stored = await storage.get(INCARNATION_KEY)
  const previous = stored === undefined ? 0 : decodeCanonical(stored)
  if (typeof previous !== 'number' || !Number.isSafeInteger(previous)) throw new Error(`corrupt ${INCARNATION_KEY} in the database`)
  const incarnation = previous + 1
  await storage.batch([{ type: 'put', key: INCARNATION_KEY, value: encodeCanonical(incarnation) }])
  return incarnation
}

import './runtime/polyfills.js'
import { EventEmitter } from 'node:events'
import { join } from 'node:path'
import { createSanitizer, type Sanitizer } from '../sanitize/index.js'
import { Membership } from '../membership/membership.js'
import type { Member, MemberChange, MemberStatus } from '../membership/membership-core.js'
import { TRUST_SCORE_THRESHOLDS, TRUST_TOPIC_SCORE_CAP_MAX, type PeerTrust, type TrustEventType, type TrustOptions } from '../membership/trust.js'
import { TrustStore } from '../membership/trust-store.js'
import { API_PORT_DEFAULT, startApi, type ApiServer } from './api/server.js'
import { LISTEN_DEFAULT } from './runtime/config.js'
import { AuditLog, auditInputFields, type AuditEntry, type AuditInput } from './gate/audit.js'
import { CapabilityService, type CapabilityHandler } from './gate/capabilities.js'
import type { Clock, Rng } from '../base/clock.js'
import type { NodeComponents } from '../base/components.js'
import { decodeCanonical, encodeCanonical } from '../base/codec.js'
import { FedmeshError } from '../base/errors.js'
import { DB_DIR, loadOrCreateSalt, loadOrCreateToken, removeRuntime, writeRuntime } from './runtime/data-dir.js'
import { fromHex, toHex } from '../base/bytes.js'
import { loadOrCreateIdentity } from './runtime/key-file.js'
import { type NodeIdentity } from '../base/ed25519.js'
import { requestJoin, resolveOrgIdentity, serveJoins, type OrgIdentity } from './org/org-identity.js'
import { LevelStorage } from './runtime/level-storage.js'
import { Libp2pTransport } from './runtime/libp2p-transport.js'
import { createLogger } from './runtime/log.js'
import { type Logger } from '../base/log.js'
import { registerFederationMetrics } from './federation/metrics.js'
import { NodeMetrics } from './runtime/metrics.js'
import { PolicyWatcher } from './gate/policy-file.js'
import { RevocationError, RevocationList, type RefusalPath, type RevokedOrg } from './gate/revocation.js'
import type { Storage } from '../base/storage.js'
import { cryptoRng, systemClock } from './runtime/system-clock.js'
import { nodeRoutes } from './api/routes.js'
import type { RaftNodeStatus } from '../consensus/raft/driver.js'
import { TaskService, type NewTask, type RaftOptions, type TaskReceipt, type WriteOptions } from './org/task-service.js'
import { Federation, type FederationReceipt, type FederationStatus } from './federation/federation.js'
import { genesisId, loadEpochFile, loadGenesis } from './federation/genesis.js'

// FedmeshNode: the library API. Composes identity, storage, audit, trust, policy, sanitizer,
// transport, membership, capabilities and the admin API, and owns their lifecycle. Everything that
// touches the world is created here and injected into the parts.
export interface FedmeshNodeInit {
  dataDir: string
  /** The org to found on first start when not joining (default 'default'). */
  org?: string
  /** A join token from `fedmesh invite`: join that org on first start. */
  join?: string
  listen?: string[]
  bootstrap?: string[]
  /** Admin API address, or null for none. */
  api?: { host: string, port: number } | null
  capabilities?: string[]
  heartbeatMs?: number
  suspectAfterMs?: number
  deadAfterMs?: number
  /** Trust model settings (prior, halfLifeMs, quarantineBelow...). */
  trust?: Partial<TrustOptions>
  /** The org's Raft group (tick, election timeout, voters, snapshots) and task board bounds. */
  raft?: RaftOptions
  /** Federation timing: replica tick and how often this node anchors its audit head. */
  federation?: { tickMs?: number, anchorIntervalMs?: number }
  logger?: Logger
  clock?: Clock
  rng?: Rng
}

export interface NodeStatus {
  key: string
  peerId: string
  org: string
  orgRoot: string
  incarnation: number
  multiaddrs: string[]
  peers: number
  members: Record<MemberStatus, number>
  capabilities: string[]
  audit: { seq: number, hash: string }
  /** The org's Raft group as this node sees it: role, term, leader, commit and applied index. */
  raft: RaftNodeStatus
  /** Present when the data dir holds a federation genesis (federation.json). */
  federation?: FederationStatus
  uptimeMs: number
}

export interface MemberView extends Omit<Member, 'lastHeardMs' | 'sinceMs'> {
  self: boolean
  lastHeardAgoMs: number
}

export interface FedmeshNodeEvents {
  'member:change': [MemberChange]
  'peer:trust-changed': [{ peer: string, crossed: 'entered-quarantine' | 'left-quarantine', score: number }]
}

interface Parts {
  dataDir: string
  org: OrgIdentity
  identity: NodeIdentity
  storage: Storage
  audit: AuditLog
  trust: TrustStore
  revocations: RevocationList
  policy: PolicyWatcher
  sanitizer: Sanitizer
  transport: Libp2pTransport
  logger: Logger
  clock: Clock
  rng: Rng
}

const INCARNATION_KEY = 'node/incarnation'

// Which announcement outcomes say something about the sender's conduct.
const ANNOUNCEMENT_CONDUCT: Record<string, TrustEventType> = {
  'bad-signature': 'invalid-signature',
  'sender-mismatch': 'invalid-signature',
  malformed: 'malformed',
  oversize: 'malformed',
  'cert-bad-signature': 'invalid-signature',
  'cert-mismatch': 'invalid-signature',
  'cert-malformed': 'malformed'
}

export class FedmeshNode extends EventEmitter<FedmeshNodeEvents> {
  readonly metrics: NodeMetrics
  readonly membership: Membership
  readonly capabilities: CapabilityService
  readonly #parts: Parts
  readonly #startedMs: number
  readonly #stopTimers: Array<() => void> = []
  readonly #revoking = new Map<string, Promise<void>>()
  #api?: ApiServer
  #tasks?: TaskService
  #federation?: Federation

  private constructor (parts: Parts, init: FedmeshNodeInit, incarnation: number) {
    super()
    this.#parts = parts
    const { identity, transport, clock, rng, logger, trust, revocations } = parts
    const components: NodeComponents = { signer: identity, org: parts.org.org, transport, clock, rng, logger, isOrgRevoked: (root) => revocations.isOrgRevoked(root) }
    this.#startedMs = clock.monotonicMs()
    this.membership = new Membership({
      ...components,
      incarnation,
      certificate: parts.org.certificateBytes,
      addrs: () => transport.multiaddrs(),
      capabilities: () => [...new Set([...(init.capabilities ?? []), ...this.capabilities.capabilities()])],
      heartbeatMs: init.heartbeatMs,
      suspectAfterMs: init.suspectAfterMs,
      deadAfterMs: init.deadAfterMs,
      admits: (key) => !trust.book.isQuarantined(key, clock.wallMs())
    })
    this.capabilities = new CapabilityService({
      ...components,
      sanitizer: parts.sanitizer,
      decide: (request, context) => parts.policy.decide(request, context),
      trustOf: (peer) => {
        const nowMs = clock.wallMs()
        return { score: trust.book.score(peer, nowMs), quarantined: trust.book.isQuarantined(peer, nowMs) }
      },
      conduct: (peer, event) => this.#conduct(peer, event),
      audit: async (input) => await this.audit(input),
      orgOf: (peer) => this.membership.core.get(peer)?.org,
      isRevoked: (peer) => refusesPeer(parts, peer, 'capability')
    })
    this.metrics = new NodeMetrics({ peers: () => transport.connectedPeers().length, membersByStatus: () => this.#countByStatus(), revokedRefusals: () => revocations.refusals() })
    this.membership.on('change', (change) => this.#onMemberChange(change))
    this.membership.on('received', ({ key, verdict, reason, latencyMs, root }) => {
      this.metrics.envelopes.inc({ result: verdict === 'accept' ? 'accepted' : verdict === 'ignore' ? 'ignored' : 'rejected', reason: reason ?? '' })
      if (latencyMs !== undefined) this.metrics.gossipLatency.observe(Math.max(0, latencyMs) / 1000)
      if (key === undefined) return
      if (reason === 'org-revoked' && root !== undefined) return this.#refuseAnnouncement(key, root)
      const event = verdict === 'reject' ? ANNOUNCEMENT_CONDUCT[reason ?? 'malformed'] : verdict === 'accept' || reason === 'quarantined' ? 'valid-message' : undefined
      if (event !== undefined) this.#conduct(key, event)
      if (verdict === 'reject') void this.audit({ action: 'announcement.in', decision: 'reject', peer: key, detail: { reason: reason ?? '' } }).catch(() => undefined)
    })
  }

  static async start (init: FedmeshNodeInit): Promise<FedmeshNode> {
    const logger = init.logger ?? createLogger('fedmesh')
    const clock = init.clock ?? systemClock
    const rng = init.rng ?? cryptoRng
    const { identity } = await loadOrCreateIdentity(init.dataDir)
    const storage = await LevelStorage.open(join(init.dataDir, DB_DIR))
    const cleanup: Array<() => Promise<unknown>> = [async () => await storage.close()]
    try {
      const incarnation = await nextIncarnation(storage)
      const audit = await AuditLog.open({ storage, signer: identity, clock })
      cleanup.unshift(async () => await audit.close())
      const trust = await TrustStore.load({ storage, logger, ...(init.trust !== undefined ? { trust: init.trust } : {}) })
      const revocations = await RevocationList.load({ storage, logger })
      const policy = new PolicyWatcher({ dataDir: init.dataDir, clock, logger })
      await policy.start()
      cleanup.unshift(async () => await policy.stop())
      const sanitizer = createSanitizer({ salt: await loadOrCreateSalt(init.dataDir) })
      const transport = await Libp2pTransport.create({
        identity, listen: init.listen ?? LISTEN_DEFAULT, logger,
        scoring: { appSpecificScore: (key) => trust.appSpecificScore(key, clock.wallMs()), thresholds: TRUST_SCORE_THRESHOLDS, topicScoreCap: TRUST_TOPIC_SCORE_CAP_MAX },
        denyPeer: (key) => refusesPeer({ revocations, trust }, toHex(key), 'connection')
      })
      cleanup.unshift(async () => await transport.stop())
      const org = await resolveOrgIdentity({
        dataDir: init.dataDir, identity, nowMs: clock.wallMs(), org: init.org, join: init.join,
        requestJoin: async (token) => await requestJoin(transport, identity, token, clock, rng)
      })
      serveJoins({ transport, org, storage, clock, audit: async (input) => await audit.append(input) })
      const node = new FedmeshNode({ dataDir: init.dataDir, org, identity, storage, audit, trust, revocations, policy, sanitizer, transport, logger, clock, rng }, init, incarnation)
      node.membership.start()
      await node.#startTasks(init.raft)
      cleanup.unshift(async () => await node.#tasks?.stop())
      await node.#startFederation(init.federation)
      cleanup.unshift(async () => node.#federation?.stop())
      node.#stopTimers.push(clock.every(node.membership.heartbeatMs, () => node.#housekeeping()))
      node.#keepBootstrapped(init.bootstrap ?? [])
      if (init.api !== null) await node.#startApi(init.api ?? { host: '127.0.0.1', port: API_PORT_DEFAULT })
      await writeRuntime(init.dataDir, {
        pid: process.pid, key: identity.publicKeyHex, peerId: node.peerId, org: org.org,
        api: node.apiUrl ?? null, multiaddrs: transport.multiaddrs(), startedAt: new Date(clock.wallMs()).toISOString()
      })
      await node.audit({ action: 'node.started', decision: 'info', detail: { incarnation: String(incarnation), org: org.org, root: toHex(org.root) } })
      logger.info({ key: identity.publicKeyHex, org: org.org, root: toHex(org.root), incarnation, multiaddrs: transport.multiaddrs(), api: node.apiUrl }, 'node started')
      return node
    } catch (err) {
      for (const step of cleanup) await step().catch(() => undefined)
      throw err
    }
  }

  get key (): string { return this.#parts.identity.publicKeyHex }
  get org (): string { return this.#parts.org.org }
  /** The org root key (hex): the organisation's identity. */
  get orgRoot (): string { return toHex(this.#parts.org.root) }
  /** Whether this node holds the org root key (founded the org; issues certificates). */
  get isOrgRoot (): boolean { return this.#parts.org.rootSigner !== undefined }
  get peerId (): string { return this.#parts.transport.libp2p.peerId.toString() }
  get apiUrl (): string | undefined { return this.#api?.url }
  get transport (): Libp2pTransport { return this.#parts.transport }
  get auditLog (): AuditLog { return this.#parts.audit }
  get policy (): PolicyWatcher { return this.#parts.policy }
  /** The org's replicated task board (Raft group org/<org>). */
  get tasks (): TaskService {
    if (this.#tasks === undefined) throw new Error('the task board is not running')
    return this.#tasks
  }

  /** The federation (PBFT across orgs), when this node's data dir holds a genesis. */
  get federation (): Federation {
    if (this.#federation === undefined) throw new FedmeshError('not-federated', 'no federation genesis in this data dir (fedmesh federation join FILE)')
    return this.#federation
  }

  /**
   * Proposes a task to the org (resolves once committed and applied here), or with scope
   * 'federation' to every org of the federation (resolves once f+1 orgs applied it at one sequence).
   */
  async propose (task: NewTask, options: WriteOptions & { scope: 'federation' }): Promise<FederationReceipt>
  async propose (task: NewTask, options?: WriteOptions & { scope?: 'org' }): Promise<TaskReceipt>
  async propose (task: NewTask, options?: WriteOptions & { scope?: 'org' | 'federation' }): Promise<TaskReceipt | FederationReceipt> {
    if (options?.scope === 'federation') return await this.federation.propose(task, options)
    return await this.tasks.propose(task, options)
  }
  async claim (taskId: string, options?: WriteOptions & { assignee?: string }): Promise<TaskReceipt> { return await this.tasks.claim(taskId, options) }
  async complete (taskId: string, result: unknown, options?: WriteOptions & { assignee?: string }): Promise<TaskReceipt> { return await this.tasks.complete(taskId, result, options) }
  async fail (taskId: string, result: unknown, options?: WriteOptions & { assignee?: string }): Promise<TaskReceipt> { return await this.tasks.fail(taskId, result, options) }

  multiaddrs (): string[] {
    return this.#parts.transport.multiaddrs()
  }

  /** Serves a capability to the peers and organisations the policy allows. */
  expose (capability: string, handler: CapabilityHandler): void {
    this.capabilities.expose(capability, handler)
    void this.membership.announce()
  }

  /** Asks a peer (public key hex) to run a capability; payloads leaving the org are sanitized. */
  async request (peer: string, capability: string, payload: unknown, options: { timeoutMs?: number } = {}): Promise<unknown> {
    return await this.capabilities.request(peer, capability, payload, options)
  }

  /** Appends to the audit log; resolves once the entry is durable. */
  async audit (input: AuditInput): Promise<AuditEntry> {
    return await this.#parts.audit.append(input)
  }

  /** Every known member including this node, ordered by key. */
  members (): MemberView[] {
    const nowMs = this.#parts.clock.monotonicMs()
    const self: MemberView = {
      key: this.key, org: this.org, root: this.orgRoot, addrs: this.multiaddrs(), capabilities: this.capabilities.capabilities(), incarnation: this.membership.incarnation,
      seq: 0, status: 'alive', self: true, lastHeardAgoMs: 0
    }
    const others = this.membership.members().map(({ lastHeardMs, sinceMs: _since, ...m }) => ({ ...m, self: false, lastHeardAgoMs: Math.round(nowMs - lastHeardMs) }))
    return [self, ...others].sort((a, b) => a.key < b.key ? -1 : 1)
  }

  /** Keys of alive members whose certificates chain to our org root (our org's replicas). */
  orgMembers (): string[] {
    return this.membership.members().filter((m) => m.root === this.orgRoot && m.status === 'alive').map((m) => m.key)
  }

  /**
   * Cuts off an organisation the federation revoked (idempotent; also called at start for earlier
   * revocations): from now on its root is refused by every gate, its known nodes are disconnected,
   * banned in the trust book (score pinned at 0, so gossipsub scores them at the bottom) and
   * expelled from the membership view, with one audit entry 'federation.org.revoke'. The
   * revocation is persisted, so a restarted node refuses before the federation re-applies it.
   */
  async revokeOrg (root: string, org: string, detail: Record<string, string> = {}): Promise<void> {
    if (root === this.orgRoot) throw new RevocationError('revocation-own-org', 'a node cannot cut off its own organisation')
    const pending = this.#revoking.get(root)
    if (pending !== undefined) return await pending
    if (this.#parts.revocations.isOrgRevoked(root)) return
    const run = this.#revoke(root, org, detail).finally(() => this.#revoking.delete(root))
    this.#revoking.set(root, run)
    await run
  }

  isOrgRevoked (root: string): boolean {
    return this.#parts.revocations.isOrgRevoked(root)
  }

  /** Refusal check for the federation's intake of PBFT envelopes: isOrgRevoked, counted as path 'federation'. */
  refusesOrg (root: string): boolean {
    const refused = this.isOrgRevoked(root)
    if (refused) this.#parts.revocations.count('federation')
    return refused
  }

  revokedOrgs (): RevokedOrg[] {
    return this.#parts.revocations.list()
  }

  trust (): PeerTrust[] {
    return this.#parts.trust.book.snapshot(this.#parts.clock.wallMs())
  }

  status (): NodeStatus {
    return {
      key: this.key,
      peerId: this.peerId,
      org: this.org,
      orgRoot: this.orgRoot,
      incarnation: this.membership.incarnation,
      multiaddrs: this.multiaddrs(),
      peers: this.#parts.transport.connectedPeers().length,
      members: this.#countByStatus(),
      capabilities: this.capabilities.capabilities(),
      audit: this.#parts.audit.head,
      raft: this.tasks.raftStatus(),
      ...(this.#federation !== undefined ? { federation: this.#federation.status() } : {}),
      uptimeMs: Math.round(this.#parts.clock.monotonicMs() - this.#startedMs)
    }
  }

  /** Graceful stop: announce leave, then close the API, transport, audit log and database. */
  async stop (): Promise<void> {
    const { audit, trust, policy, transport, storage, dataDir, logger } = this.#parts
    for (const stopTimer of this.#stopTimers) stopTimer()
    this.#federation?.stop()
    await this.#tasks?.stop()
    await this.membership.stop()
    await this.#api?.close()
    await transport.stop()
    await policy.stop()
    await this.audit({ action: 'node.stopped', decision: 'info' }).catch(() => undefined)
    await audit.close()
    await trust.flush()
    await storage.close()
    await removeRuntime(dataDir)
    logger.info({ key: this.key }, 'node stopped')
  }

  // Audit at least once: a crash before persist() re-audits when the federation re-applies it.
  async #revoke (root: string, org: string, detail: Record<string, string>): Promise<void> {
    const { revocations, clock, logger } = this.#parts
    const auditInput = (peersCut: number): AuditInput => ({ action: 'federation.org.revoke', decision: 'deny', org, detail: { ...detail, root, peersCut: String(peersCut) } })
    auditInputFields(auditInput(0))
    revocations.add(root, org, clock.wallMs())
    const peers = this.membership.members().filter((m) => m.root === root).map((m) => m.key)
    await Promise.all(peers.map(async (peer) => await this.#cutPeer(root, peer)))
    await this.audit(auditInput(peers.length))
    await revocations.persist(root)
    logger.warn({ root, org, peersCut: peers.length }, 'organisation revoked: its nodes are cut off')
  }

  // The revocation's audit entry stands for every peer cut: no trust.threshold or member entries.
  async #cutPeer (root: string, peer: string): Promise<void> {
    const { revocations, trust, transport, clock, logger } = this.#parts
    revocations.addPeer(root, peer)
    trust.record(peer, 'revoked', clock.wallMs())
    this.membership.expel(peer)
    await transport.hangUp(fromHex(peer)).catch((err) => logger.warn({ peer, err: (err as Error).message }, 'hang-up failed'))
  }

  // A node of a revoked org announced itself (perhaps one we never saw): counted, and cut the first time.
  #refuseAnnouncement (peer: string, root: string): void {
    const { revocations, trust, logger } = this.#parts
    revocations.count('announcement')
    if (revocations.rootOfPeer(peer) !== undefined || trust.book.isBanned(peer)) return
    void this.#cutPeer(root, peer)
      .then(async () => await revocations.persist(root))
      .catch((err) => logger.error({ peer, err: (err as Error).message }, 'cannot record a revoked org\'s node'))
  }

  #conduct (peer: string, event: TrustEventType): void {
    const result = this.#parts.trust.record(peer, event, this.#parts.clock.wallMs())
    if (result.crossed !== undefined) this.#reportCrossing(peer, result.crossed, result.score)
  }

  #reportCrossing (peer: string, crossed: 'entered-quarantine' | 'left-quarantine', score: number): void {
    this.#parts.logger.warn({ peer, crossed, score }, 'peer trust crossed the quarantine threshold')
    this.emit('peer:trust-changed', { peer, crossed, score })
    void this.audit({ action: 'trust.threshold', decision: 'info', peer, detail: { crossed, score: score.toFixed(4) } }).catch(() => undefined)
  }

  #onMemberChange (change: MemberChange): void {
    this.emit('member:change', change)
    if (change.kind === 'expelled') return
    const m = change.member
    void this.audit({ action: `member.${change.kind}`, decision: 'info', peer: m.key, org: m.org, detail: { incarnation: String(m.incarnation) } })
      .catch((err) => this.#parts.logger.error({ err: (err as Error).message }, 'audit append failed'))
  }

  // Once per heartbeat: report trust crossings caused by drift alone, and persist trust scores.
  #housekeeping (): void {
    const { trust, clock, logger } = this.#parts
    for (const { peer, crossed, score } of trust.crossings(clock.wallMs())) this.#reportCrossing(peer, crossed, score)
    trust.flush().catch((err) => logger.error({ err: (err as Error).message }, 'trust flush failed'))
  }

  // Dial the bootstrap addresses at start and again whenever the node finds itself alone (the
  // bootstrap node may start later, or restart).
  #keepBootstrapped (addresses: string[]): void {
    if (addresses.length === 0) return
    const { transport, logger, clock } = this.#parts
    const dialAll = (): void => {
      if (transport.connectedPeers().length > 0) return
      for (const address of addresses) {
        transport.dial([address]).catch((err) => logger.warn({ address, err: (err as Error).message }, 'bootstrap dial failed'))
      }
    }
    dialAll()
    this.#stopTimers.push(clock.every(this.membership.heartbeatMs, dialAll))
  }

  #countByStatus (): Record<MemberStatus, number> {
    const counts: Record<MemberStatus, number> = { alive: 1, suspect: 0, dead: 0, left: 0 }
    for (const m of this.membership.members()) counts[m.status]++
    return counts
  }

  async #startTasks (options: RaftOptions | undefined): Promise<void> {
    const { storage, transport, clock, rng, logger } = this.#parts
    const tasks = await TaskService.start({
      org: this.org, selfKey: this.key, founder: this.isOrgRoot, storage, transport, clock, rng, logger,
      orgMembers: () => this.orgMembers(), registry: this.metrics.registry, ...(options !== undefined ? { options } : {})
    })
    this.#tasks = tasks
    this.membership.on('change', () => tasks.membersChanged())
  }

  async #startFederation (federation: FedmeshNodeInit['federation']): Promise<void> {
    const genesis = await loadGenesis(this.#parts.dataDir)
    if (genesis === undefined) return
    const epoch = await loadEpochFile(this.#parts.dataDir)
    const { identity, org, transport, clock, rng, logger, sanitizer, audit } = this.#parts
    const id = genesisId(genesis)
    this.#federation = new Federation({
      genesis, ...(epoch !== undefined ? { config: { genesis: epoch.genesis, epoch: epoch.epoch, orgs: epoch.orgs }, ...(epoch.core !== undefined ? { epochCore: new Uint8Array(Buffer.from(epoch.core, 'base64')) } : {}) } : {}),
      signer: identity, certificate: org.certificateBytes, org: org.org, orgRoot: this.orgRoot, transport, clock, rng, logger, sanitizer,
      isLeader: () => this.tasks.raftStatus().role === 'leader',
      commitBatch: async (batch) => await this.tasks.commitFederationBatch(batch),
      installState: async (install) => await this.tasks.installFederationState(install),
      state: () => this.tasks.federationState(id),
      commitPromises: async (instance, record, requestId) => await this.tasks.commitPbftPromises(instance, record, requestId),
      loadPromises: async (instance) => await this.tasks.pbftPromises(instance),
      audit: async (input) => await this.audit(input),
      auditHead: () => audit.head,
      revokeOrg: async (root, name, detail) => await this.revokeOrg(root, name, detail),
      isOrgRevoked: (root) => this.refusesOrg(root),
      conduct: (peer, event) => this.#conduct(peer, event),
      ...federation
    })
    this.#federation.start()
    const federationOf = this.#federation
    registerFederationMetrics(this.metrics.registry, () => federationOf.status())
  }

  async #startApi (address: { host: string, port: number }): Promise<void> {
    this.#api = await startApi({
      ...address,
      token: await loadOrCreateToken(this.#parts.dataDir),
      logger: this.#parts.logger,
      routes: nodeRoutes(this)
    })
  }
}

// A peer is refused once it is known to belong to a revoked org: seen with such a certificate, or
// banned in the trust book (which outlives the revocation list's per-org cap).
function refusesPeer (parts: Pick<Parts, 'revocations' | 'trust'>, peer: string, path: RefusalPath): boolean {
  const refused = parts.revocations.rootOfPeer(peer) !== undefined || parts.trust.book.isBanned(peer)
  if (refused) parts.revocations.count(path)
  return refused
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

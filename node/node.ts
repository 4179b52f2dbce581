import './runtime/polyfills.js'
import { EventEmitter } from 'node:events'
import { join } from 'node:path'
import { createSanitizer, type Sanitizer } from '../sanitize/index.js'
import { Membership } from '../membership/membership.js'
import type { Member, MemberChange, MemberStatus } from '../membership/membership-core.js'
import { TRUST_SCORE_THRESHOLDS, TRUST_TOPIC_SCORE_CAP_MAX, type PeerTrust, type TrustOptions } from '../membership/trust.js'
import { TrustStore } from '../membership/trust-store.js'
import { API_PORT_DEFAULT, startApi, type ApiServer } from './api/server.js'
import { ConsoleMonitor } from './api/console-monitor.js'
import { LISTEN_DEFAULT } from './runtime/config.js'
import { AuditLog, type AuditEntry, type AuditInput } from './gate/audit.js'
import { CapabilityService, type CapabilityHandler } from './gate/capabilities.js'
import { RejectionAudit } from './gate/rejection-audit.js'
import type { Clock, Rng } from '../base/clock.js'
import type { NodeComponents } from '../base/components.js'
import { decodeCanonical, encodeCanonical } from '../base/codec.js'
import { FedmeshError } from '../base/errors.js'
import { DB_DIR, loadOrCreateMetricsToken, loadOrCreateSalt, loadOrCreateToken, removeRuntime, writeRuntime } from './runtime/data-dir.js'
import { toHex } from '../base/bytes.js'
import { loadOrCreateIdentity } from './runtime/key-file.js'
import { type NodeIdentity } from '../base/ed25519.js'
import { hasOrgCertificate, requestJoin, resolveOrgIdentity, serveJoins, type OrgIdentity } from './org/org-identity.js'
import { parseJoinToken } from '../base/org-certificate.js'
import { BootstrapError, checkBootstrapAddresses, keepBootstrapped, KnownAddresses, reachBootstrap } from './runtime/bootstrap.js'
import { Lifecycle } from './runtime/lifecycle.js'
import { LevelStorage } from './runtime/level-storage.js'
import { Libp2pTransport } from './runtime/libp2p-transport.js'
import { createLogger } from './runtime/log.js'
import { type Logger } from '../base/log.js'
import { registerFederationMetrics } from './federation/metrics.js'
import { NodeMetrics } from './runtime/metrics.js'
import { PolicyWatcher } from './gate/policy-file.js'
import { ConductReporter } from './gate/conduct.js'
import { RevocationEnforcer, refusesPeer } from './gate/revocation-enforcer.js'
import { RevocationList, type RevokedOrg } from './gate/revocation.js'
import type { Storage } from '../base/storage.js'
import { cryptoRng, systemClock } from './runtime/system-clock.js'
import { ROUTE_ACCESS, consoleNode, nodeRoutes } from './api/routes.js'
import type { LeaveResult, RaftMembers, RaftNodeStatus } from '../consensus/raft/driver.js'
import { TaskService, type NewTask, type RaftOptions, type TaskReceipt, type WriteOptions } from './org/task-service.js'
import { Federation, type FederationReceipt, type FederationStatus } from './federation/federation.js'
import { genesisId, loadEpochFile, loadGenesis } from './federation/genesis.js'

// FedmeshNode: the library API, a facade over the node's components. start() composes them in one
// place — storage, trust, audit, policy, transport, membership, task board, federation, conduct
// reporting (gate/conduct.ts), bootstrap dialing, admin API, runtime file — and runs them as one
// lifecycle (runtime/lifecycle.ts): started in order, stopped in reverse. Revocations are carried out
// by gate/revocation-enforcer.ts. Everything that touches the world is created here and injected.
export interface FedmeshNodeInit {
  dataDir: string
  /** The org to found on first start when not joining (default 'default'). */
  org?: string
  /** A join token from `fedmesh invite`: join that org on first start. */
  join?: string
  listen?: string[]
  /** Announced (and put in invite tokens) instead of the listening addresses: behind NAT or a port forward. */
  announce?: string[]
  bootstrap?: string[]
  /** Admin API address, or null for none; metricsUnauthenticated serves /metrics without a token to loopback clients. */
  api?: ApiAddress | null
  capabilities?: string[]
  heartbeatMs?: number
  suspectAfterMs?: number
  deadAfterMs?: number
  /** Trust model settings (prior, halfLifeMs, quarantineBelow...). */
  trust?: Partial<TrustOptions>
  /** The org's Raft group (tick, election timeout, voters, snapshots, dead-voter cleanup) and task board bounds. */
  raft?: RaftOptions
  /**
   * Disaster recovery for an org that lost its quorum for good: this node becomes the group's only
   * voter from its own log, removing every other member for good (audited). Once, on one survivor.
   */
  forceNewGroup?: boolean
  /** Federation timing: replica tick and how often this node anchors its audit head. */
  federation?: { tickMs?: number, anchorIntervalMs?: number }
  logger?: Logger
  clock?: Clock
  rng?: Rng
}

export interface ApiAddress { host: string, port: number, metricsUnauthenticated?: boolean }

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
  /** The node stopped (stop(), leave(), or the admin API's leave). */
  stopped: []
  'peer:trust-changed': [{ peer: string, crossed: 'entered-quarantine' | 'left-quarantine', score: number }]
}

interface Parts {
  dataDir: string
  org: OrgIdentity
  identity: NodeIdentity
  storage: Storage
  audit: AuditLog
  rejections: RejectionAudit
  trust: TrustStore
  revocations: RevocationList
  policy: PolicyWatcher
  sanitizer: Sanitizer
  transport: Libp2pTransport
  logger: Logger
  clock: Clock
  rng: Rng
  lifecycle: Lifecycle
}

const INCARNATION_KEY = 'node/incarnation'
/** A voter the org's Raft leader has not heard from for this long is removed, if a healthy quorum remains. */
export const DEAD_VOTER_REMOVE_AFTER_MS_DEFAULT = 300_000

export class FedmeshNode extends EventEmitter<FedmeshNodeEvents> {
  readonly metrics: NodeMetrics
  readonly membership: Membership
  readonly capabilities: CapabilityService
  readonly #parts: Parts
  readonly #revocation: RevocationEnforcer
  readonly #conduct: ConductReporter
  readonly #startedMs: number
  #api?: ApiServer
  #tasks?: TaskService
  #federation?: Federation
  #stopping: Promise<void> | undefined

  private constructor (parts: Parts, init: FedmeshNodeInit, incarnation: number) {
    super()
    this.#parts = parts
    const { identity, transport, clock, rng, logger, trust, revocations } = parts
    const components: NodeComponents = { signer: identity, org: parts.org.org, transport, clock, rng, logger, isOrgRevoked: (root) => revocations.isOrgRevoked(root) }
    const audit = async (input: AuditInput): Promise<AuditEntry> => await this.audit(input)
    const auditRejection = async (input: AuditInput, reason: string): Promise<void> => await parts.rejections.record(input, reason)
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
    this.#revocation = new RevocationEnforcer({ orgRoot: this.orgRoot, revocations, trust, membership: this.membership, transport, clock, logger, audit })
    this.#conduct = new ConductReporter({
      trust, clock, logger, audit, heartbeatMs: this.membership.heartbeatMs, onCrossing: (crossing) => this.emit('peer:trust-changed', crossing)
    })
    this.capabilities = new CapabilityService({
      ...components,
      sanitizer: parts.sanitizer,
      decide: (request, context) => parts.policy.decide(request, context),
      trustOf: (peer) => {
        const nowMs = clock.wallMs()
        return { score: trust.book.score(peer, nowMs), quarantined: trust.book.isQuarantined(peer, nowMs) }
      },
      conduct: (peer, event) => this.#conduct.record(peer, event),
      audit,
      auditRejection,
      orgOf: (peer) => this.membership.core.get(peer)?.org,
      isRevoked: (peer) => this.#revocation.refusesPeer(peer, 'capability')
    })
    this.metrics = new NodeMetrics({ peers: () => transport.connectedPeers().length, membersByStatus: () => this.#countByStatus(), revokedRefusals: () => revocations.refusals() })
    this.membership.on('change', (change) => this.#onMemberChange(change))
    this.membership.on('received', ({ key, verdict, reason, latencyMs, root }) => {
      this.metrics.envelopes.inc({ result: verdict === 'accept' ? 'accepted' : verdict === 'ignore' ? 'ignored' : 'rejected', reason: reason ?? '' })
      if (latencyMs !== undefined) this.metrics.gossipLatency.observe(Math.max(0, latencyMs) / 1000)
      if (key === undefined) return
      if (reason === 'org-revoked' && root !== undefined) return this.#revocation.refuseAnnouncement(key, root)
      this.#conduct.announcement(key, verdict, reason)
      if (verdict === 'reject') void auditRejection({ action: 'announcement.in', decision: 'reject', peer: key, detail: { reason: reason ?? '' } }, reason ?? '').catch(() => undefined)
    })
  }

  /**
   * Composes and starts the node: each component in order, each stopped in reverse by stop(), or
   * by a start that fails part way (only what it started).
   */
  static async start (init: FedmeshNodeInit): Promise<FedmeshNode> {
    const logger = init.logger ?? createLogger('fedmesh')
    const clock = init.clock ?? systemClock
    const rng = init.rng ?? cryptoRng
    const bootstrap = init.bootstrap ?? []
    // Nothing is written before the addresses are checked, and a first start names its org.
    checkBootstrapAddresses(bootstrap)
    const firstStart = !hasOrgCertificate(init.dataDir)
    if (firstStart && bootstrap.length > 0 && init.org === undefined && init.join === undefined) {
      throw new BootstrapError('org-unspecified', 'a first start with --bootstrap founds no org by accident: pass --join TOKEN (from fedmesh invite on a node of the org to join) or --org NAME (found your own org in that mesh)')
    }
    const { identity } = await loadOrCreateIdentity(init.dataDir)
    const lifecycle = new Lifecycle(logger)
    // The audit log of a node that got as far as node.started ends with node.stopped.
    let announced = false
    try {
      const storage = await lifecycle.start('storage', async () => await LevelStorage.open(join(init.dataDir, DB_DIR)), async (db) => await db.close())
      const incarnation = await nextIncarnation(storage)
      const trust = await lifecycle.start('trust', async () => await TrustStore.load({ storage, logger, ...(init.trust !== undefined ? { trust: init.trust } : {}) }), async (store) => { await store.flush() })
      const audit = await lifecycle.start('audit', async () => await AuditLog.open({ storage, signer: identity, clock }), async (log) => {
        if (announced) await log.append({ action: 'node.stopped', decision: 'info' }).catch(() => undefined)
        await log.close()
      })
      // Stopped before the log closes, so the last window's counts are written.
      const rejections = await lifecycle.start('rejections', () => {
        const bounded = new RejectionAudit({ audit: async (input) => await audit.append(input), clock, logger })
        bounded.start()
        return bounded
      }, async (bounded) => await bounded.stop())
      const revocations = await RevocationList.load({ storage, logger })
      const policy = await lifecycle.start('policy', async () => {
        const watcher = new PolicyWatcher({ dataDir: init.dataDir, clock, logger })
        await watcher.start()
        return watcher
      }, async (watcher) => await watcher.stop())
      const sanitizer = createSanitizer({ salt: await loadOrCreateSalt(init.dataDir) })
      const transport = await lifecycle.start('transport', async () => await Libp2pTransport.create({
        identity, listen: init.listen ?? LISTEN_DEFAULT, ...(init.announce !== undefined ? { announce: init.announce } : {}), logger,
        scoring: { appSpecificScore: (key) => trust.appSpecificScore(key, clock.wallMs()), thresholds: TRUST_SCORE_THRESHOLDS, topicScoreCap: TRUST_TOPIC_SCORE_CAP_MAX },
        denyPeer: (key) => refusesPeer({ revocations, trust }, toHex(key), 'connection')
      }), async (t) => await t.stop())
      if (firstStart && bootstrap.length > 0) await reachBootstrap(transport, bootstrap, { clock, logger })
      const known = await KnownAddresses.load(init.dataDir, transport.libp2p.peerId.toString(), logger)
      const org = await resolveOrgIdentity({
        dataDir: init.dataDir, identity, nowMs: clock.wallMs(), org: init.org, join: init.join,
        requestJoin: async (token) => await requestJoin(transport, identity, token, clock, rng)
      })
      if (firstStart && init.join !== undefined) known.remember(parseJoinToken(init.join, clock.wallMs()).addrs)
      serveJoins({ transport, org, identity, storage, clock, audit: async (input) => await audit.append(input), auditRejection: async (input, reason) => await rejections.record(input, reason) })
      const node = new FedmeshNode({ dataDir: init.dataDir, org, identity, storage, audit, rejections, trust, revocations, policy, sanitizer, transport, logger, clock, rng, lifecycle }, init, incarnation)
      // The task board finds the org's members through membership; the leave goes out once the board and federation stopped.
      await lifecycle.start('membership', () => node.membership.start(), async () => await node.membership.stop())
      node.#tasks = await lifecycle.start('tasks', async () => await node.#startTasks(init.raft, init.forceNewGroup === true), async (tasks) => await tasks.stop())
      const federation = await node.#loadFederation(init.federation)
      if (federation !== undefined) node.#federation = await lifecycle.start('federation', () => node.#startFederation(federation), (f) => f.stop())
      await lifecycle.start('conduct', () => node.#conduct.start(), () => node.#conduct.stop())
      await lifecycle.start('bootstrap', () => keepBootstrapped({
        transport, bootstrap, known, everyMs: node.membership.heartbeatMs, clock, logger,
        learned: () => node.membership.members().filter((m) => m.status === 'alive').flatMap((m) => m.addrs)
      }), (stop) => stop())
      if (init.api !== null) node.#api = await lifecycle.start('api', async () => await node.#startApi(init.api ?? { host: '127.0.0.1', port: API_PORT_DEFAULT }), async (api) => await api.close())
      await lifecycle.start('runtime', async () => await writeRuntime(init.dataDir, {
        pid: process.pid, key: identity.publicKeyHex, peerId: node.peerId, org: org.org,
        api: node.apiUrl ?? null, multiaddrs: transport.multiaddrs(), startedAt: new Date(clock.wallMs()).toISOString()
      }), async () => await removeRuntime(init.dataDir))
      await node.audit({ action: 'node.started', decision: 'info', detail: { incarnation: String(incarnation), org: org.org, root: toHex(org.root) } })
      announced = true
      logger.info({ key: identity.publicKeyHex, org: org.org, root: toHex(org.root), incarnation, multiaddrs: transport.multiaddrs(), api: node.apiUrl }, 'node started')
      return node
    } catch (err) {
      await lifecycle.stop().catch(() => undefined)
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
    return this.#aliveOrgMembers().map((m) => m.key)
  }

  #aliveOrgMembers (): Member[] {
    return this.membership.members().filter((m) => m.root === this.orgRoot && m.status === 'alive')
  }

  /**
   * Cuts off an organisation the federation revoked (idempotent; also called at start for earlier
   * revocations): from now on its root is refused by every gate, its known nodes are disconnected,
   * banned in the trust book (score pinned at 0, so gossipsub scores them at the bottom) and
   * expelled from the membership view, with one audit entry 'federation.org.revoke'. The
   * revocation is persisted, so a restarted node refuses before the federation re-applies it.
   */
  async revokeOrg (root: string, org: string, detail: Record<string, string> = {}): Promise<void> {
    await this.#revocation.revokeOrg(root, org, detail)
  }

  isOrgRevoked (root: string): boolean {
    return this.#parts.revocations.isOrgRevoked(root)
  }

  /** Refusal check for the federation's intake of PBFT envelopes: isOrgRevoked, counted as path 'federation'. */
  refusesOrg (root: string): boolean {
    return this.#revocation.refusesOrg(root)
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

  /**
   * Graceful stop: every component in reverse start order — runtime file, admin API, timers,
   * federation, task board, membership (announcing leave), transport, policy, audit log, trust
   * scores, database.
   */
  async stop (): Promise<void> {
    this.#stopping ??= this.#parts.lifecycle.stop().finally(() => {
      this.#parts.logger.info({ key: this.key }, 'node stopped')
      this.emit('stopped')
    })
    await this.#stopping
  }

  /**
   * Leaves the org's Raft group (`fedmesh leave`, SIGTERM), then stops: the leader removes this
   * node unless that would leave the group without a healthy quorum (or it is the only voter).
   */
  async leave (): Promise<LeaveResult> {
    const result = await this.leaveGroup()
    await this.stop()
    return result
  }

  /** The removal part of leave(), audited ('raft.leave'); the node keeps running. */
  async leaveGroup (): Promise<LeaveResult> {
    if (this.#stopping !== undefined) return { removed: false, reason: 'stopping', message: 'the node is stopping' }
    const result = await this.tasks.leave()
    await this.audit({ action: 'raft.leave', decision: result.removed ? 'allow' : 'deny', detail: result.removed ? {} : { reason: result.reason } })
    return result
  }

  /** The org's Raft members with the leader's view of their health (asked of the leader). */
  async raftMembers (): Promise<RaftMembers> {
    return await this.tasks.members()
  }

  /** Removes a member from the org's Raft group through its leader (`fedmesh members remove`), audited. */
  async removeMember (key: string): Promise<void> {
    await this.tasks.removeMember(key)
    await this.audit({ action: 'raft.member.remove', decision: 'allow', peer: key })
  }

  #onMemberChange (change: MemberChange): void {
    this.emit('member:change', change)
    if (change.kind === 'expelled') return
    const m = change.member
    void this.audit({ action: `member.${change.kind}`, decision: 'info', peer: m.key, org: m.org, detail: { incarnation: String(m.incarnation) } })
      .catch((err) => this.#parts.logger.error({ err: (err as Error).message }, 'audit append failed'))
  }

  #countByStatus (): Record<MemberStatus, number> {
    const counts: Record<MemberStatus, number> = { alive: 1, suspect: 0, dead: 0, left: 0 }
    for (const m of this.membership.members()) counts[m.status]++
    return counts
  }

  async #startTasks (options: RaftOptions | undefined, forceNewGroup: boolean): Promise<TaskService> {
    const { storage, transport, clock, rng, logger } = this.#parts
    const tasks = await TaskService.start({
      org: this.org, selfKey: this.key, founder: this.isOrgRoot, storage, transport, clock, rng, logger,
      orgMembers: () => this.#aliveOrgMembers().map((m) => ({ key: m.key, incarnation: m.incarnation })),
      incarnationOf: (key) => key === this.key ? this.membership.incarnation : this.membership.core.get(key)?.incarnation,
      registry: this.metrics.registry, options: { deadVoterRemoveAfterMs: DEAD_VOTER_REMOVE_AFTER_MS_DEFAULT, ...options }, forceNewGroup
    })
    this.membership.on('change', () => tasks.membersChanged())
    const forced = tasks.forced
    if (forced !== undefined) {
      await this.audit({ action: 'raft.force-new-group', decision: 'allow', detail: { removed: forced.removed.join(','), term: String(forced.hardState.term), commit: String(forced.hardState.commit) } })
    }
    return tasks
  }

  /** The federation, when the data dir holds a genesis (and maybe the epoch an admitted org imported). */
  async #loadFederation (federation: FedmeshNodeInit['federation']): Promise<Federation | undefined> {
    const genesis = await loadGenesis(this.#parts.dataDir)
    if (genesis === undefined) return undefined
    const epoch = await loadEpochFile(this.#parts.dataDir)
    const { identity, org, transport, clock, rng, logger, sanitizer, audit } = this.#parts
    const id = genesisId(genesis)
    return new Federation({
      genesis, ...(epoch !== undefined ? { config: { genesis: epoch.genesis, epoch: epoch.epoch, orgs: epoch.orgs }, ...(epoch.core !== undefined ? { epochCore: new Uint8Array(Buffer.from(epoch.core, 'base64')) } : {}) } : {}),
      signer: identity, certificate: org.certificateBytes, org: org.org, orgRoot: this.orgRoot, transport, clock, rng, logger, sanitizer,
      isLeader: () => this.tasks.raftStatus().role === 'leader',
      orgLeader: () => this.tasks.raftStatus().leader ?? undefined,
      commitBatch: async (batch) => await this.tasks.commitFederationBatch(batch),
      installState: async (install) => await this.tasks.installFederationState(install),
      state: () => this.tasks.federationState(id),
      commitPromises: async (instance, record, requestId) => await this.tasks.commitPbftPromises(instance, record, requestId),
      loadPromises: async (instance) => await this.tasks.pbftPromises(instance),
      audit: async (input) => await this.audit(input),
      auditHead: () => audit.head,
      revokeOrg: async (root, name, detail) => await this.revokeOrg(root, name, detail),
      isOrgRevoked: (root) => this.refusesOrg(root),
      conduct: (peer, event) => this.#conduct.record(peer, event),
      ...federation
    })
  }

  #startFederation (federation: Federation): Federation {
    federation.start()
    registerFederationMetrics(this.metrics.registry, () => federation.status())
    return federation
  }

  /** The admin API, with the console's monitor sampling for as long as it runs. */
  async #startApi (address: ApiAddress): Promise<ApiServer> {
    const { dataDir, clock, logger } = this.#parts
    const monitor = new ConsoleMonitor({ node: consoleNode(this), clock, logger })
    const api = await startApi({
      ...address,
      token: await loadOrCreateToken(dataDir),
      metricsToken: await loadOrCreateMetricsToken(dataDir),
      logger,
      routes: nodeRoutes(this, monitor),
      access: ROUTE_ACCESS
    })
    const stopSampling = monitor.start()
    return { url: api.url, close: async () => { stopSampling(); await api.close() } }
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

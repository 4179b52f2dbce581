import {
  type CommittedBatch, type Evidence, type Outbound, type PbftMessage, type PbftStatus, type VerifyFn,
  PBFT_ID_LENGTH_MAX, PBFT_OP_BYTES_MAX, ReplyCollector, decodePbftMessage, encodePbftMessage, faultsTolerated
} from '../../consensus/pbft/index.js'
import type { Sanitizer } from '../../sanitize/index.js'
import type { AuditInput } from '../gate/audit.js'
import type { Clock, Rng } from '../../base/clock.js'
import { decodeCanonical, encodeCanonical } from '../../base/codec.js'
import { ReplayGuard, openEnvelope, sealEnvelope } from '../../base/envelope.js'
import { FedmeshError } from '../../base/errors.js'
import { CATCH_UP_KINDS, CatchUp } from './catch-up.js'
import { type FederationOp, TASK_REF, clientPrefix, signOp } from './ops.js'
import {
  type FederationBatch, type FederationConfig, type FederationInstall, type FederationState, type MembershipChange, type Outcome, type RequestResult, instanceId, validConfig
} from './state.js'
import { genesisId, type EpochFile, type Genesis } from './genesis.js'
import { fromHex, toHex } from '../../base/bytes.js'
import { verify, type Signer } from '../../base/ed25519.js'
import type { Logger } from '../../base/log.js'
import { verifyCertificate } from '../../base/org-certificate.js'
import { PbftDriver } from '../../consensus/pbft/driver.js'
import type { PromiseLogState, PromiseRecord } from '../../consensus/pbft/promise-log.js'
import type { NewTask } from '../org/task-service.js'
import { TaskError, finishCommand, proposeCommand } from '../org/task-board.js'
import type { Transport, Verdict } from '../../base/transport.js'

// The federation in the node: one PBFT replica per member organisation (replica id = the org root
// key hex), hosted by the org's Raft leader, over the gossip topic fedmesh/pbft/v1 that every member
// subscribes to (it reaches the other orgs' leaders without knowing them). The replica's promises go
// through the org's Raft log (pbft-driver.ts), so a new leader resumes it.
//
// Who may speak for an org: a PBFT message is signed by the hosting node's key, not the org root
// (which stays offline on the founder). Every envelope on the topic carries the sender's node
// certificate; a receiver believes a node speaks for org R only when that certificate chains to R
// and R is a member of the envelope's epoch. The core's verify hook then accepts a signature "by R"
// when one of the node keys certified by R (learnt from envelopes, bounded per org) made it.
//
// Requests are signed operations (federation-ops.ts): cross-org tasks (sanitized first), governance
// votes and audit-head anchors. Each committed batch goes into the org's Raft log as ONE entry that
// the org's federation state applies (federation-state.ts) — creating the tasks on every org node —
// and the org replies with the results; a proposer resolves once f+1 orgs reply the same.
//
// Epochs: a passed admission or revocation starts a new PBFT instance over the new members. Every
// node follows its org's applied state: the host starts the new epoch's replica and lets the old one
// answer laggards a while; a revoked org's nodes are cut off (revokeOrg) on every member node.

export const PBFT_TOPIC = 'fedmesh/pbft/v1'
/** Point-to-point: replica messages to hosts heard from lately, and replies to the proposing node. */
export const PBFT_CHANNEL = 'pbft'
const ENVELOPE_TYPE = 'pbft.message'
const NONCE_BYTES = 16
export const FEDERATION_ENVELOPE_BYTES_MAX = 1024 * 1024
const NODES_PER_ORG_MAX = 64
const PENDING_PROPOSALS_MAX = 1024
const TO_MAX = 64
const KIND_REPLICA = 0
const KIND_REQUEST = 1
const TICK_MS_DEFAULT = 50
const PROPOSE_TIMEOUT_MS_DEFAULT = 30_000
const COMMIT_ATTEMPTS = 3
/** A replaced epoch's replica keeps answering this many view-change timeouts, so laggards finish it. */
const RETIRE_AFTER_TIMEOUTS = 10
/** A request answered 'epoch-ended' is re-submitted into the next epoch at most this many times. */
const EPOCH_RETRIES_MAX = 3
const ANCHOR_INTERVAL_MS_DEFAULT = 60_000

export interface FederationInit {
  genesis: Genesis
  /** The epoch this node starts from when its org holds no federation state yet (an admitted org's import). */
  config?: FederationConfig
  /** With config: the federation state core as that epoch began (EpochFile.core). */
  epochCore?: Uint8Array
  /** This node's key: it signs envelopes and ops and, while hosting, PBFT messages for the org. */
  signer: Signer
  certificate: Uint8Array
  org: string
  orgRoot: string
  transport: Transport
  clock: Clock
  rng: Rng
  logger: Logger
  sanitizer: Sanitizer
  /** Whether this node leads its org's Raft group (and so hosts the org's replica). */
  isLeader: () => boolean
  /** Applies a committed batch to the org's federation state and board (idempotent per batch): results, and the state digest at a checkpoint. */
  commitBatch: (batch: FederationBatch) => Promise<{ results: Uint8Array[], digest?: Uint8Array }>
  /** Installs another org's federation state core (a state transfer whose digest checked out). */
  installState: (install: FederationInstall) => Promise<void>
  /** The federation state as applied on this node (undefined before the org applied any batch). */
  state: () => FederationState | undefined
  /** Commits the replica's promises into the org's Raft log (idempotent per requestId). */
  commitPromises: (instance: string, record: PromiseRecord, requestId: { client: string, seq: number }) => Promise<void>
  /** The org's replicated promise log for an instance, linearizable. */
  loadPromises: (instance: string) => Promise<PromiseLogState>
  audit: (input: AuditInput) => Promise<unknown>
  /** This node's audit-log head, anchored in the federation state every anchorIntervalMs. */
  auditHead?: () => { seq: number, hash: string }
  /** True (and counted) for an org the federation revoked: its envelopes are refused before anything else. */
  isOrgRevoked?: (root: string) => boolean
  /** Cuts a revoked org off at the node level (connections, trust, gates); idempotent. */
  revokeOrg?: (root: string, org: string, detail: Record<string, string>) => Promise<void>
  /** Reports a peer's conduct to the trust model (equivocation evidence against an org's nodes). */
  conduct?: (peer: string, event: 'equivocation') => void
  tickMs?: number
  anchorIntervalMs?: number
}

export interface FederationReceipt {
  /** The epoch, PBFT sequence number and position in its batch: the same in every org. */
  epoch: number
  seq: number
  position: number
  /** applied (task), recorded (anchor), approved / passed (vote), or refused with a reason. */
  outcome: Outcome
  reason: string
  /** False when the decided operation was refused (alike by every org). */
  accepted: boolean
}

export interface FederationStatus {
  id: string
  epoch: number
  instance: string
  orgs: Array<{ name: string, root: string }>
  /** Admissions and revocations so far, oldest first. */
  changes: Array<{ action: 'admit' | 'revoke', org: string, root: string, epoch: number }>
  replica: string
  member: boolean
  hosting: boolean
  pbft?: PbftStatus & { failure?: string }
  received: number
  sent: number
  rejected: Record<string, number>
}

export class FederationError extends FedmeshError {}

interface Pending { instance: string, collector: ReplyCollector, resolve: (result: Uint8Array) => void }
interface Hosted { config: FederationConfig, instance: string, driver: PbftDriver, retireAtMs?: number }

export class Federation {
  readonly id: string
  readonly #init: FederationInit
  readonly #initial: FederationConfig
  #config: FederationConfig
  /** The epoch before the current one (its members may still speak while it retires). */
  #previous: FederationConfig | undefined
  /** Per org root (hex): node keys its certificates vouched for, newest last. */
  readonly #certified = new Map<string, Map<string, Uint8Array>>()
  readonly #replayGuard = new ReplayGuard()
  readonly #pending = new Map<string, Pending>()
  readonly #clientPrefix: string
  readonly #verify: VerifyFn
  readonly #stats = { received: 0, sent: 0, rejected: {} as Record<string, number> }
  /** Replicas this node hosts, by instance: the current epoch's and, while it retires, the previous one's. */
  readonly #hosted = new Map<string, Hosted>()
  readonly #enforced = new Set<string>()
  readonly #catchUp: CatchUp
  /** Per org root: the node that last spoke for its replica, and when (monotonic ms). */
  readonly #hosts = new Map<string, { node: Uint8Array, heardMs: number }>()
  #starting = false
  #stopped = false
  #requests = 0
  #anchoredSeq = 0
  #anchoring = false
  #unsubscribe?: () => void
  #stopTimers: Array<() => void> = []

  constructor (init: FederationInit) {
    this.#init = init
    this.id = genesisId(init.genesis)
    this.#initial = validConfig(init.config ?? { genesis: this.id, epoch: 0, orgs: init.genesis.orgs })
    if (this.#initial.genesis !== this.id) throw new FederationError('not-federated', 'the epoch config belongs to another genesis')
    this.#config = init.state()?.config ?? this.#initial
    if (!this.#config.orgs.some((o) => o.root === init.orgRoot) && this.#initial === this.#config) {
      throw new FederationError('not-federated', `org ${init.org} (${init.orgRoot.slice(0, 16)}) is not a member of the federation`)
    }
    this.#clientPrefix = `${clientPrefix(init.orgRoot, init.signer.publicKey)}${toHex(init.rng.bytes(8))}`
    this.#certify(init.orgRoot, init.signer.publicKey)
    this.#verify = (rootKey, message, signature) => {
      for (const nodeKey of this.#certified.get(toHex(rootKey))?.values() ?? []) if (verify(nodeKey, message, signature)) return true
      return false
    }
    this.#catchUp = new CatchUp({
      clock: init.clock,
      checkpointInterval: init.genesis.pbft.checkpointInterval,
      retryMs: Math.max(200, init.genesis.pbft.viewChangeTimeoutMs >> 1),
      publish: (instance, kind, payload) => { void this.#publish(this.#seal(instance, kind, [], payload)) },
      sendTo: (node, instance, kind, payload) => init.transport.send(node, PBFT_CHANNEL, this.#seal(instance, kind, [], payload)),
      state: () => init.state(),
      apply: async (instance, seq, requests) => { await this.#apply(instance, { seq, requests }) },
      install: async (instance, core) => await init.installState({ config: this.#initial, instance, core }),
      hosting: (instance) => this.#hosted.has(instance)
    })
  }

  start (): void {
    const init = this.#init
    const stopTopic = init.transport.onTopic(PBFT_TOPIC, (from, bytes) => this.#receive(from, bytes))
    const stopChannel = init.transport.onMessage(PBFT_CHANNEL, (from, bytes) => { this.#receive(from, bytes) })
    this.#unsubscribe = () => { stopTopic(); stopChannel() }
    this.#stopTimers.push(init.clock.every(init.tickMs ?? TICK_MS_DEFAULT, () => this.#tick()))
    if (init.auditHead !== undefined) this.#stopTimers.push(init.clock.every(init.anchorIntervalMs ?? ANCHOR_INTERVAL_MS_DEFAULT, () => this.#anchor()))
  }

  stop (): void {
    this.#stopped = true
    for (const stop of this.#stopTimers) stop()
    this.#unsubscribe?.()
    for (const h of this.#hosted.values()) h.driver.stop()
    this.#hosted.clear()
  }

  status (): FederationStatus {
    const current = this.#hosted.get(instanceId(this.#config))
    return {
      id: this.id,
      epoch: this.#config.epoch,
      instance: instanceId(this.#config),
      orgs: this.#config.orgs.map((o) => ({ ...o })),
      changes: (this.#init.state()?.changes ?? []).map((c) => ({ action: c.action, org: c.org.name, root: c.org.root, epoch: c.epoch })),
      replica: this.#init.orgRoot,
      member: this.#isMember(this.#init.orgRoot),
      hosting: current !== undefined,
      ...(current !== undefined ? { pbft: current.driver.status() } : {}),
      received: this.#stats.received,
      sent: this.#stats.sent,
      rejected: { ...this.#stats.rejected }
    }
  }

  /** Orders a task across the federation; resolves once f+1 orgs applied it at the same sequence. */
  async propose (task: NewTask & { target?: string }, options: { timeoutMs?: number } = {}): Promise<FederationReceipt> {
    const init = this.#init
    const checked = proposeCommand(task, toHex(init.signer.publicKey))
    if (checked.op !== 'propose') throw new Error('unreachable')
    const target = task.target === undefined ? null : this.#memberRoot(task.target)
    const clean = init.sanitizer.sanitize({ title: checked.title, payload: JSON.parse(checked.payload) as unknown })
    const { title, payload } = clean.value as { title: string, payload: unknown }
    const op: FederationOp = { kind: 'task', title, capability: checked.capability, payload: JSON.stringify(payload), target }
    const detail: Record<string, string> = { federation: this.id, capability: checked.capability, ...(target !== null ? { target } : {}) }
    for (const [category, count] of Object.entries(clean.report.redactions)) detail[`redacted.${category}`] = String(count)
    await init.audit({ action: 'federation.task.propose', decision: 'allow', content: encodeCanonical([title, checked.capability, op.payload]), detail })
    return await this.#request(op, options)
  }

  /** This org's signed approval of admitting (name, root) or revoking an org; passes with a quorum of members. */
  async vote (proposal: { action: 'admit', name: string, root: string } | { action: 'revoke', org: string }, options: { timeoutMs?: number } = {}): Promise<FederationReceipt> {
    const op: FederationOp = proposal.action === 'admit'
      ? { kind: 'admit', name: proposal.name, root: proposal.root.toLowerCase() }
      : { kind: 'revoke', root: this.#memberRoot(proposal.org) }
    await this.#init.audit({ action: `federation.vote.${proposal.action}`, decision: 'allow', detail: { federation: this.id, root: op.root, ...(op.kind === 'admit' ? { name: op.name } : {}) } })
    return await this.#request(op, options)
  }

  /**
   * Claims the federated task at ref (epoch.seq.position, from its board copy's federation field) for
   * this node: 'applied' once ordered, 'refused' (not-the-target, already-claimed...) alike everywhere.
   */
  async claim (ref: string, options: { timeoutMs?: number } = {}): Promise<FederationReceipt> {
    return await this.#request({ kind: 'claim', ref: taskRef(ref) }, options)
  }

  /** The claimer's result for a federated task: it lands in every org's copy, the proposer's included. */
  async finish (ref: string, status: 'done' | 'failed', result: unknown, options: { timeoutMs?: number } = {}): Promise<FederationReceipt> {
    const cmd = finishCommand(status === 'done' ? 'complete' : 'fail', 't1', toHex(this.#init.signer.publicKey), result)
    if (cmd.op !== 'complete' && cmd.op !== 'fail') throw new Error('unreachable')
    const clean = this.#init.sanitizer.sanitize(JSON.parse(cmd.result) as unknown)
    return await this.#request({ kind: 'finish', ref: taskRef(ref), status, result: JSON.stringify(clean.value) }, options)
  }

  /** What an org admitted into the current epoch imports (`fedmesh federation export`). */
  epochFile (): EpochFile {
    const state = this.#init.state()
    const core = state !== undefined && state.config.epoch === this.#config.epoch ? state.epochStart : undefined
    return { genesis: this.id, epoch: this.#config.epoch, orgs: this.#config.orgs.map((o) => ({ ...o })), ...(core !== undefined ? { core: Buffer.from(core).toString('base64') } : {}) }
  }

  /** The federation state this org applied (anchors, changes), for verification. */
  get state (): FederationState | undefined {
    return this.#init.state()
  }

  // ---- requests: signed ops, answered by f+1 orgs ----

  async #request (op: FederationOp, options: { timeoutMs?: number }): Promise<FederationReceipt> {
    const init = this.#init
    if (this.#pending.size >= PENDING_PROPOSALS_MAX) throw new FederationError('federation-busy', `${PENDING_PROPOSALS_MAX} federation requests in flight`)
    if (!this.#isMember(init.orgRoot)) throw new FederationError('not-a-member', `org ${init.org} is not a member of federation epoch ${this.#config.epoch} (revoked)`)
    const deadlineMs = init.clock.monotonicMs() + (options.timeoutMs ?? PROPOSE_TIMEOUT_MS_DEFAULT)
    for (let attempt = 0; ; attempt++) {
      const config = this.#config
      const result = await this.#requestIn(config, op, deadlineMs)
      if (result.outcome !== 'epoch-ended' || attempt >= EPOCH_RETRIES_MAX) return { ...result, accepted: ACCEPTED.has(result.outcome) }
      // Ordered after a membership change: every org refused it alike; try again in the next epoch.
      while (this.#config.epoch < result.epoch) {
        if (this.#stopped || init.clock.monotonicMs() >= deadlineMs) throw new FederationError('federation-timeout', 'the federation changed epoch and this node has not seen the new one yet')
        await init.clock.sleep(init.tickMs ?? TICK_MS_DEFAULT)
      }
    }
  }

  async #requestIn (config: FederationConfig, op: FederationOp, deadlineMs: number): Promise<RequestResult> {
    const init = this.#init
    const instance = instanceId(config)
    const client = `${this.#clientPrefix}.${++this.#requests}`
    const opBytes = signOp(init.signer, init.certificate, { instance, client, timestamp: 1 }, op)
    if (opBytes.length > PBFT_OP_BYTES_MAX) throw new TaskError('task-invalid', `operation of ${opBytes.length} bytes exceeds ${PBFT_OP_BYTES_MAX}`)
    const request = encodeCanonical([client, 1, opBytes])
    const replicas = config.orgs.map((o) => o.root)
    const answered = new Promise<Uint8Array>((resolve) => {
      const collector = new ReplyCollector(client, 1, faultsTolerated(replicas.length), new Map(replicas.map((r) => [r, fromHex(r)])), this.#verify)
      this.#pending.set(client, { instance, collector, resolve })
    })
    // Backing off: under overload, retries of every pending request would multiply the load that
    // delays them (each one re-verified and re-forwarded by every replica).
    let retryMs = Math.max(100, init.genesis.pbft.viewChangeTimeoutMs >> 1)
    const retryMsMax = 4 * init.genesis.pbft.viewChangeTimeoutMs
    let answer: Uint8Array | undefined
    void answered.then((a) => { answer = a })
    try {
      // Gossip may not reach every replica at once (a mesh still forming, a new org leader): resend
      // until answered, in a fresh envelope each time (the replay guard drops a repeated one);
      // replicas answer a retry from their reply cache, and the federation state applies a client once.
      while (answer === undefined) {
        if (this.#stopped) throw new FederationError('federation-stopped', 'the node is stopping')
        this.#hosted.get(instance)?.driver.propose(opBytes, { client, seq: 1 })
        await this.#publish(this.#seal(instance, KIND_REQUEST, [], request))
        await Promise.race([answered, init.clock.sleep(retryMs)])
        retryMs = Math.min(2 * retryMs, retryMsMax)
        if (answer === undefined && init.clock.monotonicMs() >= deadlineMs) throw new FederationError('federation-timeout', 'no f+1 matching replies in time')
      }
      return decodeResult(answer)
    } finally {
      this.#pending.delete(client)
    }
  }

  // ---- following the org: epochs, leadership, revocations ----

  #tick (): void {
    const init = this.#init
    const state = init.state()
    if (state !== undefined && state.config.epoch > this.#config.epoch) {
      this.#previous = this.#config
      this.#config = state.config
      init.logger.info({ federation: this.id, epoch: this.#config.epoch, orgs: this.#config.orgs.map((o) => o.name) }, 'federation entered a new epoch')
    }
    for (const change of state?.changes ?? []) if (change.action === 'revoke') this.#enforceRevocation(change)
    const leader = init.isLeader()
    const current = instanceId(this.#config)
    const nowMs = init.clock.monotonicMs()
    for (const [instance, h] of this.#hosted) {
      if (h.driver.failure !== undefined || !leader || (h.retireAtMs !== undefined && nowMs >= h.retireAtMs)) {
        h.driver.stop()
        this.#hosted.delete(instance)
        if (!leader) init.logger.info({ federation: this.id, instance }, 'no longer the org\'s raft leader: pbft replica stopped')
      } else if (instance !== current && h.retireAtMs === undefined) {
        h.retireAtMs = nowMs + RETIRE_AFTER_TIMEOUTS * init.genesis.pbft.viewChangeTimeoutMs
      }
    }
    if (leader && !this.#hosted.has(current) && !this.#starting && this.#isMember(init.orgRoot)) {
      this.#starting = true
      this.#startDriver(this.#config).catch((err: Error) => init.logger.error({ err: err.message }, 'pbft replica failed to start'))
        .finally(() => { this.#starting = false })
    }
  }

  #enforceRevocation (change: MembershipChange): void {
    const { root, name } = change.org
    if (this.#enforced.has(root) || this.#isMember(root)) return
    this.#enforced.add(root)
    if (root === this.#init.orgRoot) return this.#init.logger.warn({ federation: this.id, epoch: change.epoch }, 'this org was revoked from the federation')
    this.#certified.delete(root)
    this.#init.logger.warn({ federation: this.id, org: name, root, epoch: change.epoch }, 'org revoked by federation vote')
    this.#init.revokeOrg?.(root, name, { federation: this.id, epoch: String(change.epoch), seq: String(change.seq) })
      .catch((err: Error) => this.#init.logger.error({ err: err.message, org: name }, 'revocation not enforced'))
  }

  async #startDriver (config: FederationConfig): Promise<void> {
    const init = this.#init
    const tickMs = init.tickMs ?? TICK_MS_DEFAULT
    const instance = instanceId(config)
    const replicas = config.orgs.map((o) => o.root)
    // An admitted org's first replica: its board starts from the state the epoch began with.
    if (init.state() === undefined && init.epochCore !== undefined) await init.installState({ config: this.#initial, instance, core: init.epochCore })
    // One Raft session per driver: its records are numbered in order, and a retry reuses the number.
    const client = `pbft.${instance.slice(0, 16)}.${toHex(init.rng.bytes(8))}`
    let records = 0
    const commit = async (record: PromiseRecord): Promise<void> => {
      const requestId = { client, seq: ++records }
      for (let attempt = 1; ; attempt++) {
        try {
          return await init.commitPromises(instance, record, requestId)
        } catch (err) {
          if (err instanceof TaskError || attempt >= COMMIT_ATTEMPTS || !init.isLeader()) throw err
          init.logger.debug({ err: (err as Error).message, attempt }, 'pbft promises not committed yet: retrying')
        }
      }
    }
    const driver = await PbftDriver.start({
      replicaId: init.orgRoot,
      replicas,
      publicKeys: new Map(replicas.map((r) => [r, fromHex(r)])),
      // The core signs as the org (its replica key is the root); the hosting node's key makes the signature.
      signer: { publicKey: fromHex(init.orgRoot), sign: (m) => init.signer.sign(m) },
      verify: this.#verify,
      checkpointInterval: init.genesis.pbft.checkpointInterval,
      requestTimeoutTicks: Math.max(2, Math.round(init.genesis.pbft.viewChangeTimeoutMs / tickMs)),
      tickMs,
      promiseLog: { load: async () => await init.loadPromises(instance), commit },
      clock: init.clock,
      logger: init.logger,
      send: (messages) => this.#send(instance, messages),
      apply: async (batch) => await this.#apply(instance, batch),
      fetchState: async (seq, digest) => await this.#catchUp.fetch(instance, seq, digest),
      evidence: (e) => this.#evidence(e)
    })
    if (!init.isLeader() || instance !== instanceId(this.#config)) return driver.stop()
    this.#hosted.set(instance, { config, instance, driver })
  }

  async #apply (instance: string, batch: Pick<CommittedBatch, 'seq' | 'requests'>): Promise<{ results: Uint8Array[], digest?: Uint8Array }> {
    const requests = batch.requests.map((r) => ({ client: r.client, timestamp: r.timestamp, op: r.op }))
    const checkpoint = batch.seq % this.#init.genesis.pbft.checkpointInterval === 0
    const applied = await this.#init.commitBatch({ config: this.#initial, instance, seq: batch.seq, requests, checkpoint })
    const results = applied.results
    this.#catchUp.retain(instance, batch.seq, requests, checkpoint ? this.#init.state()?.checkpointCore(instance, batch.seq) : undefined)
    await Promise.all(requests.map(async (r, i) => {
      const result = decodeResult(results[i]!)
      await this.#init.audit({
        action: `federation.${opKind(r.op)}.apply`,
        decision: ACCEPTED.has(result.outcome) ? 'allow' : 'deny',
        peer: r.client.split('.')[1] ?? '',
        org: this.#orgName(r.client.split('.')[0] ?? ''),
        content: r.op,
        detail: { federation: this.id, epoch: String(result.epoch), seq: String(batch.seq), position: String(i), outcome: result.outcome, ...(result.reason !== '' ? { reason: result.reason } : {}) }
      })
    }))
    return applied
  }

  /** Anchors this node's audit head in the federation state, when it moved since the last anchor. */
  #anchor (): void {
    const head = this.#init.auditHead?.()
    if (head === undefined || head.seq <= this.#anchoredSeq || this.#anchoring || !this.#isMember(this.#init.orgRoot)) return
    this.#anchoring = true
    this.#request({ kind: 'anchor', auditSeq: head.seq, head: head.hash }, {})
      .then((r) => { if (r.accepted) this.#anchoredSeq = head.seq })
      .catch((err: Error) => this.#init.logger.debug({ err: err.message }, 'audit head not anchored yet'))
      .finally(() => { this.#anchoring = false })
  }

  #evidence (e: Evidence): void {
    this.#init.logger.warn({ replica: e.replica, type: e.first.body.type }, 'pbft equivocation evidence')
    void this.#init.audit({ action: 'federation.equivocation', decision: 'deny', org: this.#orgName(e.replica), detail: { replica: e.replica, type: e.first.body.type } })
      .catch(() => undefined)
    // The org signed two contradicting messages: every node it certified loses trust.
    for (const nodeKey of this.#certified.get(e.replica)?.keys() ?? []) this.#init.conduct?.(nodeKey, 'equivocation')
  }

  // ---- the wire: envelopes on the topic ----

  /**
   * The core addresses a broadcast once per replica with the same message: one envelope each,
   * sent straight to the hosts heard from lately and to the node behind a client id; gossiped
   * (reaching every node) when any recipient's host is not known to be current.
   */
  #send (instance: string, messages: Outbound[]): void {
    const groups = new Map<PbftMessage, string[]>()
    for (const { to, message } of messages) {
      const group = groups.get(message)
      if (group !== undefined) group.push(to)
      else groups.set(message, [to])
    }
    const nowMs = this.#init.clock.monotonicMs()
    const freshMs = this.#init.genesis.pbft.viewChangeTimeoutMs
    for (const [message, to] of groups) {
      for (const client of to) if (this.#pending.has(client)) this.#reply(client, message)
      const remote = to.filter((t) => !this.#pending.has(t)).slice(0, TO_MAX)
      if (remote.length === 0) continue
      const envelope = this.#seal(instance, KIND_REPLICA, remote, encodePbftMessage(message))
      const direct = remote.map((t) => {
        if (message.body.type === 'Reply') return clientNode(t)
        const host = this.#hosts.get(t)
        return host !== undefined && nowMs - host.heardMs < freshMs ? host.node : undefined
      })
      if (direct.some((node) => node === undefined)) {
        void this.#publish(envelope)
        continue
      }
      for (const node of direct) this.#init.transport.send(node!, PBFT_CHANNEL, envelope)
      this.#stats.sent++
    }
  }

  #seal (instance: string, kind: number, to: string[], payload: Uint8Array): Uint8Array {
    const init = this.#init
    const body = encodeCanonical([instance, init.certificate, to, kind, payload])
    return sealEnvelope(init.signer, { type: ENVELOPE_TYPE, org: init.org, body, timestampMs: init.clock.wallMs(), nonce: init.rng.bytes(NONCE_BYTES) })
  }

  async #publish (bytes: Uint8Array): Promise<void> {
    if (bytes.length > FEDERATION_ENVELOPE_BYTES_MAX) return this.#reject('oversize-outbound')
    try {
      await this.#init.transport.publish(PBFT_TOPIC, bytes)
      this.#stats.sent++
    } catch (err) {
      this.#init.logger.debug({ err: (err as Error).message }, 'pbft message not published')
    }
  }

  #receive (from: Uint8Array, bytes: Uint8Array): Verdict {
    const init = this.#init
    const nowMs = init.clock.wallMs()
    try {
      const envelope = openEnvelope(bytes, { nowMs, expectedSender: from, replayGuard: this.#replayGuard, bytesMax: FEDERATION_ENVELOPE_BYTES_MAX })
      if (envelope.type !== ENVELOPE_TYPE) throw new FederationError('malformed', `unexpected type ${envelope.type}`)
      const v = decodeCanonical(envelope.body)
      if (!Array.isArray(v) || v.length !== 5) throw new FederationError('malformed', 'pbft envelope body must hold 5 fields')
      const [instance, certificate, to, kind, payload] = v as unknown[]
      const config = this.#configOf(instance)
      if (config === undefined) return 'ignore'   // another federation or epoch sharing the topic: not a fault
      if (!(certificate instanceof Uint8Array) || !(payload instanceof Uint8Array) || !Array.isArray(to) || to.length > TO_MAX ||
        !to.every((t) => typeof t === 'string' && t.length <= PBFT_ID_LENGTH_MAX)) throw new FederationError('malformed', 'pbft envelope fields have the wrong types or sizes')
      const cert = verifyCertificate(certificate, { nowMs, node: envelope.from, org: envelope.org })
      const root = toHex(cert.root)
      if (init.isOrgRevoked?.(root) === true) throw new FederationError('org-revoked', `org ${cert.org} was revoked from the federation`)
      if (!config.orgs.some((o) => o.root === root)) throw new FederationError('not-federated', `org ${cert.org} is not a member of this federation epoch`)
      this.#certify(root, envelope.from)
      this.#stats.received++
      if (kind === KIND_REQUEST) this.#receiveRequest(instanceId(config), root, toHex(envelope.from), payload)
      else if (kind === KIND_REPLICA) this.#receiveReplica(instanceId(config), root, envelope.from, to as string[], payload)
      else if (CATCH_UP_KINDS.has(kind as number)) this.#catchUp.receive(instanceId(config), envelope.from, kind as number, payload)
      else throw new FederationError('malformed', 'unknown pbft envelope kind')
      return 'accept'
    } catch (err) {
      const reason = err instanceof FedmeshError ? err.code : 'malformed'
      this.#reject(reason)
      init.logger.debug({ peer: toHex(from), reason, err: (err as Error).message }, 'pbft envelope rejected')
      return reason === 'replay' || reason === 'stale' ? 'ignore' : 'reject'
    }
  }

  #receiveReplica (instance: string, root: string, node: Uint8Array, to: string[], payload: Uint8Array): void {
    const m = decodePbftMessage(payload)
    if (m.from !== root) throw new FederationError('replica-mismatch', 'a node may only speak for the org its certificate chains to')
    if (m.body.type === 'Reply') {
      for (const client of to) if (this.#pending.get(client)?.instance === instance) this.#reply(client, m)
      return
    }
    this.#hosts.set(root, { node, heardMs: this.#init.clock.monotonicMs() })
    if (to.includes(this.#init.orgRoot)) this.#hosted.get(instance)?.driver.step(m)
  }

  #receiveRequest (instance: string, root: string, node: string, payload: Uint8Array): void {
    const v = decodeCanonical(payload)
    if (!Array.isArray(v) || v.length !== 3) throw new FederationError('malformed', 'a request holds [client, timestamp, op]')
    const [client, timestamp, op] = v as unknown[]
    if (typeof client !== 'string' || client.length > PBFT_ID_LENGTH_MAX || !client.startsWith(`${root}.${node}.`)) throw new FederationError('client-mismatch', 'a client id must name the sender\'s org root and key')
    if (typeof timestamp !== 'number' || !Number.isSafeInteger(timestamp) || timestamp < 0 || !(op instanceof Uint8Array) || op.length > PBFT_OP_BYTES_MAX) {
      throw new FederationError('malformed', 'bad request timestamp or op')
    }
    this.#hosted.get(instance)?.driver.propose(op, { client, seq: timestamp })
  }

  #reply (client: string, m: PbftMessage): void {
    const pending = this.#pending.get(client)
    const result = pending?.collector.add(m)
    if (pending !== undefined && result !== undefined) pending.resolve(result)
  }

  /** The epoch config an instance id names: the current epoch or the one before it. */
  #configOf (instance: unknown): FederationConfig | undefined {
    for (const c of [this.#config, this.#previous]) if (c !== undefined && instanceId(c) === instance) return c
    return undefined
  }

  #isMember (root: string): boolean {
    return this.#config.orgs.some((o) => o.root === root)
  }

  /** A member org's root from its name or root key. */
  #memberRoot (org: string): string {
    const found = this.#config.orgs.find((o) => o.name === org || o.root === org.toLowerCase())
    if (found === undefined) throw new FederationError('not-a-member', `org '${org}' is not a member of the federation`)
    return found.root
  }

  #orgName (root: string): string {
    return [this.#config, this.#previous].flatMap((c) => c?.orgs ?? []).find((o) => o.root === root)?.name ?? root.slice(0, 16)
  }

  #certify (root: string, nodeKey: Uint8Array): void {
    let nodes = this.#certified.get(root)
    if (nodes === undefined) this.#certified.set(root, nodes = new Map())
    const key = toHex(nodeKey)
    nodes.delete(key)
    nodes.set(key, nodeKey)
    if (nodes.size > NODES_PER_ORG_MAX) nodes.delete(nodes.keys().next().value!)
  }

  #reject (reason: string): void {
    this.#stats.rejected[reason] = (this.#stats.rejected[reason] ?? 0) + 1
  }
}

function taskRef (ref: string): string {
  if (!TASK_REF.test(ref)) throw new TaskError('task-invalid', `a federated task ref is epoch.seq.position, got '${ref.slice(0, 40)}'`)
  return ref
}

/** The node key a client id names (root.node.…): where its replies go. */
function clientNode (client: string): Uint8Array | undefined {
  const node = client.split('.')[1]
  return node !== undefined && /^[0-9a-f]{64}$/.test(node) ? fromHex(node) : undefined
}

const ACCEPTED = new Set<Outcome>(['applied', 'recorded', 'approved', 'passed'])

/** The op's kind for the audit action (task, admit, revoke, anchor), read without authenticating it. */
function opKind (op: Uint8Array): string {
  try {
    const kind = (decodeCanonical(op) as unknown[])[0]
    return typeof kind === 'string' && /^[a-z]{1,16}$/.test(kind) ? kind : 'request'
  } catch {
    return 'request'
  }
}

function decodeResult (bytes: Uint8Array): RequestResult {
  const v = decodeCanonical(bytes, () => new FederationError('malformed', 'undecodable federation result'))
  if (!Array.isArray(v) || v.length !== 5) throw new FederationError('malformed', 'a federation result holds [epoch, seq, position, outcome, reason]')
  const [epoch, seq, position, outcome, reason] = v as [number, number, number, Outcome, string]
  return { epoch, seq, position, outcome, reason }
}

import {
  type CommittedBatch, type Evidence, type Outbound, type PbftMessage, type PbftStatus, type VerifyFn,
  PBFT_ID_LENGTH_MAX, PBFT_OP_BYTES_MAX, ReplyCollector, decodePbftMessage, encodePbftMessage
} from '../consensus/pbft/index.js'
import type { Sanitizer } from '../sanitize/index.js'
import type { AuditInput } from './audit.js'
import type { Clock, Rng } from './clock.js'
import { decodeCanonical, encodeCanonical } from './codec.js'
import { ReplayGuard, openEnvelope, sealEnvelope } from './envelope.js'
import { FedmeshError } from './errors.js'
import { fromHex, toHex, verify, type Signer } from './identity.js'
import type { Logger } from './log.js'
import { verifyCertificate } from './org.js'
import { PbftDriver } from './pbft-driver.js'
import type { PromiseLogState, PromiseRecord } from './pbft-promise-log.js'
import type { NewTask } from './task-service.js'
import { TaskError, proposeCommand } from './tasks.js'
import type { Transport, Verdict } from './transport.js'
import { genesisId, type Genesis } from './genesis.js'

// The federation in the node: one PBFT replica per organisation (replica id = the org root key hex,
// as the genesis lists it), hosted by the org's Raft leader, over the gossip topic fedmesh/pbft/v1
// that every member subscribes to (it reaches the other orgs' leaders without knowing them). The
// replica's promises go through the org's Raft log (pbft-driver.ts), so a new leader resumes it.
//
// Who may speak for an org: a PBFT message is signed by the hosting node's key, not the org root
// (which stays offline on the founder). Every envelope on the topic carries the sender's node
// certificate; a receiver believes a node speaks for org R only when that certificate chains to R
// and R is in the genesis. The core's verify hook then accepts a signature "by R" when one of the
// node keys certified by R (learnt from envelopes, bounded per org) made it.
//
// Cross-org tasks: the proposer sanitizes the task, sends it as a PBFT client request; once it is
// executed at sequence s, every org's replica proposes it into its own org's Raft task board (request
// id per (federation, s, position), so a retried apply lands once) and audits it. The proposer
// resolves once f+1 orgs reply the same (seq, position): at least one correct org applied it there.

export const PBFT_TOPIC = 'fedmesh/pbft/v1'
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

export interface FederationInit {
  genesis: Genesis
  /** This node's key: it signs envelopes and, while hosting, PBFT messages for the org. */
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
  /** Commits a decided task into the org's board; resolves once applied (idempotent per requestId). */
  commitTask: (task: NewTask, requestId: string) => Promise<unknown>
  /** Commits the replica's promises into the org's Raft log (idempotent per requestId). */
  commitPromises: (genesis: string, record: PromiseRecord, requestId: { client: string, seq: number }) => Promise<void>
  /** The org's replicated promise log for a genesis, linearizable. */
  loadPromises: (genesis: string) => Promise<PromiseLogState>
  audit: (input: AuditInput) => Promise<unknown>
  /** Reports a peer's conduct to the trust model (equivocation evidence against an org's nodes). */
  conduct?: (peer: string, event: 'equivocation') => void
  tickMs?: number
}

export interface FederationReceipt {
  /** The PBFT sequence number and position in its batch: the same in every org. */
  seq: number
  position: number
  /** False when the decided task was invalid (refused alike by every org). */
  accepted: boolean
}

export interface FederationStatus {
  id: string
  orgs: Array<{ name: string, root: string }>
  replica: string
  hosting: boolean
  pbft?: PbftStatus & { failure?: string }
  received: number
  sent: number
  rejected: Record<string, number>
}

export class FederationError extends FedmeshError {}

interface Pending { collector: ReplyCollector, resolve: (r: FederationReceipt) => void }

export class Federation {
  readonly id: string
  readonly #init: FederationInit
  readonly #replicas: string[]
  readonly #names: Map<string, string>
  readonly #publicKeys: Map<string, Uint8Array>
  /** Per org root (hex): node keys its certificates vouched for, newest last. */
  readonly #certified = new Map<string, Map<string, Uint8Array>>()
  readonly #replayGuard = new ReplayGuard()
  readonly #pending = new Map<string, Pending>()
  readonly #clientPrefix: string
  readonly #verify: VerifyFn
  readonly #stats = { received: 0, sent: 0, rejected: {} as Record<string, number> }
  #driver: PbftDriver | undefined
  #starting = false
  #requests = 0
  #unsubscribe?: () => void
  #stopTimer?: () => void

  constructor (init: FederationInit) {
    this.#init = init
    this.id = genesisId(init.genesis)
    this.#replicas = init.genesis.orgs.map((o) => o.root)
    this.#names = new Map(init.genesis.orgs.map((o) => [o.root, o.name]))
    this.#publicKeys = new Map(this.#replicas.map((r) => [r, fromHex(r)]))
    if (!this.#names.has(init.orgRoot)) throw new FederationError('not-federated', `org ${init.org} (${init.orgRoot.slice(0, 16)}) is not in the federation genesis`)
    this.#clientPrefix = `${init.orgRoot}.${toHex(init.signer.publicKey)}.${toHex(init.rng.bytes(8))}`
    this.#certify(init.orgRoot, init.signer.publicKey)
    this.#verify = (rootKey, message, signature) => {
      for (const nodeKey of this.#certified.get(toHex(rootKey))?.values() ?? []) if (verify(nodeKey, message, signature)) return true
      return false
    }
  }

  get f (): number { return Math.floor((this.#replicas.length - 1) / 3) }

  start (): void {
    this.#unsubscribe = this.#init.transport.onTopic(PBFT_TOPIC, (from, bytes) => this.#receive(from, bytes))
    this.#stopTimer = this.#init.clock.every(this.#init.tickMs ?? TICK_MS_DEFAULT, () => this.#followLeadership())
  }

  stop (): void {
    this.#stopTimer?.()
    this.#unsubscribe?.()
    this.#driver?.stop()
    this.#driver = undefined
  }

  status (): FederationStatus {
    return {
      id: this.id,
      orgs: this.#init.genesis.orgs.map((o) => ({ ...o })),
      replica: this.#init.orgRoot,
      hosting: this.#driver !== undefined,
      ...(this.#driver !== undefined ? { pbft: this.#driver.status() } : {}),
      received: this.#stats.received,
      sent: this.#stats.sent,
      rejected: { ...this.#stats.rejected }
    }
  }

  /** Orders a task across the federation; resolves once f+1 orgs applied it at the same sequence. */
  async propose (task: NewTask, options: { timeoutMs?: number } = {}): Promise<FederationReceipt> {
    const init = this.#init
    const checked = proposeCommand(task, toHex(init.signer.publicKey))
    if (checked.op !== 'propose') throw new Error('unreachable')
    if (this.#pending.size >= PENDING_PROPOSALS_MAX) throw new FederationError('federation-busy', `${PENDING_PROPOSALS_MAX} federation proposals in flight`)
    const clean = init.sanitizer.sanitize({ title: checked.title, payload: JSON.parse(checked.payload) as unknown })
    const { title, payload } = clean.value as { title: string, payload: unknown }
    const op = encodeCanonical([title, checked.capability, JSON.stringify(payload)])
    if (op.length > PBFT_OP_BYTES_MAX) throw new TaskError('task-invalid', `task of ${op.length} bytes exceeds ${PBFT_OP_BYTES_MAX}`)
    const detail: Record<string, string> = { federation: this.id, capability: checked.capability }
    for (const [category, count] of Object.entries(clean.report.redactions)) detail[`redacted.${category}`] = String(count)
    await init.audit({ action: 'federation.task.propose', decision: 'allow', content: op, detail })

    const client = `${this.#clientPrefix}.${++this.#requests}`
    const request = this.#seal(KIND_REQUEST, [], encodeCanonical([client, 1, op]))
    const receipt = new Promise<FederationReceipt>((resolve) => {
      this.#pending.set(client, { collector: new ReplyCollector(client, 1, this.f, this.#publicKeys, this.#verify), resolve })
    })
    const timeoutMs = options.timeoutMs ?? PROPOSE_TIMEOUT_MS_DEFAULT
    const retryMs = Math.max(100, init.genesis.pbft.viewChangeTimeoutMs >> 1)
    const deadlineMs = init.clock.monotonicMs() + timeoutMs
    let done = false
    void receipt.then(() => { done = true })
    try {
      // Gossip may not reach every replica at once (a mesh still forming): resend until answered;
      // replicas answer a retry from their reply cache, never ordering it twice.
      while (!done) {
        this.#driver?.propose(op, { client, seq: 1 })
        await this.#publish(request)
        await Promise.race([receipt, init.clock.sleep(retryMs)])
        if (!done && init.clock.monotonicMs() >= deadlineMs) throw new FederationError('federation-timeout', `no f+1 replies within ${timeoutMs} ms`)
      }
      return await receipt
    } finally {
      this.#pending.delete(client)
    }
  }

  // ---- hosting the org's replica ----

  #followLeadership (): void {
    const leader = this.#init.isLeader()
    if (this.#driver?.failed === true) {
      // A promise could not be committed: start again from what the org's log holds.
      this.#driver.stop()
      this.#driver = undefined
    }
    if (!leader && this.#driver !== undefined) {
      this.#driver.stop()
      this.#driver = undefined
      this.#init.logger.info({ federation: this.id }, 'no longer the org\'s raft leader: pbft replica stopped')
    } else if (leader && this.#driver === undefined && !this.#starting) {
      this.#starting = true
      this.#startDriver().catch((err: Error) => this.#init.logger.error({ err: err.message }, 'pbft replica failed to start'))
        .finally(() => { this.#starting = false })
    }
  }

  async #startDriver (): Promise<void> {
    const init = this.#init
    const tickMs = init.tickMs ?? TICK_MS_DEFAULT
    // One Raft session per driver: its records are numbered in order, and a retry reuses the number.
    const client = `pbft.${this.id.slice(0, 16)}.${toHex(init.rng.bytes(8))}`
    let records = 0
    const commit = async (record: PromiseRecord): Promise<void> => {
      const requestId = { client, seq: ++records }
      for (let attempt = 1; ; attempt++) {
        try {
          return await init.commitPromises(this.id, record, requestId)
        } catch (err) {
          if (err instanceof TaskError || attempt >= COMMIT_ATTEMPTS || !init.isLeader()) throw err
          init.logger.debug({ err: (err as Error).message, attempt }, 'pbft promises not committed yet: retrying')
        }
      }
    }
    const driver = await PbftDriver.start({
      replicaId: init.orgRoot,
      replicas: this.#replicas,
      publicKeys: this.#publicKeys,
      // The core signs as the org (its replica key is the root); the hosting node's key makes the signature.
      signer: { publicKey: fromHex(init.orgRoot), sign: (m) => init.signer.sign(m) },
      verify: this.#verify,
      checkpointInterval: init.genesis.pbft.checkpointInterval,
      requestTimeoutTicks: Math.max(2, Math.round(init.genesis.pbft.viewChangeTimeoutMs / tickMs)),
      tickMs,
      promiseLog: { load: async () => await init.loadPromises(this.id), commit },
      clock: init.clock,
      logger: init.logger,
      send: (messages) => this.#send(messages),
      apply: async (batch) => await this.#apply(batch),
      evidence: (e) => this.#evidence(e)
    })
    if (!init.isLeader()) return driver.stop()
    this.#driver = driver
  }

  async #apply (batch: CommittedBatch): Promise<Uint8Array[]> {
    const results: Uint8Array[] = []
    for (const [position, request] of batch.requests.entries()) {
      const task = this.#decodeRequest(request.client, request.op)
      let accepted = task !== undefined
      if (task !== undefined) {
        const { proposerRoot, proposer, title, capability, payload } = task
        const federation = { id: this.id, seq: batch.seq, position, org: this.#names.get(proposerRoot)!, root: proposerRoot, proposer }
        const detail = { federation: this.id, seq: String(batch.seq), position: String(position), capability }
        try {
          await this.#init.commitTask({ title, capability, payload: { federation, payload } }, `f.${this.id.slice(0, 16)}.${batch.seq}.${position}`)
          await this.#init.audit({ action: 'federation.task.apply', decision: 'allow', peer: proposer, org: federation.org, content: request.op, detail })
        } catch (err) {
          if (!(err instanceof TaskError)) throw err
          accepted = false
          await this.#init.audit({ action: 'federation.task.apply', decision: 'deny', peer: proposer, org: federation.org, content: request.op, detail: { ...detail, reason: err.code } })
        }
      }
      results.push(encodeCanonical([batch.seq, position, accepted]))
    }
    return results
  }

  #decodeRequest (client: string, op: Uint8Array): { proposerRoot: string, proposer: string, title: string, capability: string, payload: unknown } | undefined {
    const [proposerRoot, proposer] = client.split('.')
    if (proposerRoot === undefined || proposer === undefined || !this.#names.has(proposerRoot)) return undefined
    try {
      const v = decodeCanonical(op)
      if (!Array.isArray(v) || v.length !== 3 || typeof v[2] !== 'string') return undefined
      const cmd = proposeCommand({ title: v[0], capability: v[1], payload: JSON.parse(v[2]) as unknown }, proposer)
      if (cmd.op !== 'propose') return undefined
      return { proposerRoot, proposer, title: cmd.title, capability: cmd.capability, payload: JSON.parse(cmd.payload) as unknown }
    } catch {
      return undefined
    }
  }

  #evidence (e: Evidence): void {
    this.#init.logger.warn({ replica: e.replica, type: e.first.body.type }, 'pbft equivocation evidence')
    void this.#init.audit({ action: 'federation.equivocation', decision: 'deny', org: this.#names.get(e.replica) ?? e.replica, detail: { replica: e.replica, type: e.first.body.type } })
      .catch(() => undefined)
    // The org signed two contradicting messages: every node it certified loses trust.
    for (const nodeKey of this.#certified.get(e.replica)?.keys() ?? []) this.#init.conduct?.(nodeKey, 'equivocation')
  }

  // ---- the wire: envelopes on the topic ----

  #send (messages: Outbound[]): void {
    // The core addresses a broadcast once per replica with the same message: one gossip message each.
    const groups = new Map<PbftMessage, string[]>()
    for (const { to, message } of messages) {
      const group = groups.get(message)
      if (group !== undefined) group.push(to)
      else groups.set(message, [to])
    }
    for (const [message, to] of groups) {
      for (const client of to) if (this.#pending.has(client)) this.#reply(client, message)
      const remote = to.filter((t) => !this.#pending.has(t))
      if (remote.length === 0) continue
      void this.#publish(this.#seal(KIND_REPLICA, remote.slice(0, TO_MAX), encodePbftMessage(message)))
    }
  }

  #seal (kind: number, to: string[], payload: Uint8Array): Uint8Array {
    const init = this.#init
    const body = encodeCanonical([this.id, init.certificate, to, kind, payload])
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
      const [federation, certificate, to, kind, payload] = v as unknown[]
      if (federation !== this.id) return 'ignore'   // another federation sharing the topic: not a fault
      if (!(certificate instanceof Uint8Array) || !(payload instanceof Uint8Array) || !Array.isArray(to) || to.length > TO_MAX ||
        !to.every((t) => typeof t === 'string' && t.length <= PBFT_ID_LENGTH_MAX)) throw new FederationError('malformed', 'pbft envelope fields have the wrong types or sizes')
      const cert = verifyCertificate(certificate, { nowMs, node: envelope.from, org: envelope.org })
      const root = toHex(cert.root)
      if (!this.#names.has(root)) throw new FederationError('not-federated', `org ${cert.org} is not in the federation genesis`)
      this.#certify(root, envelope.from)
      this.#stats.received++
      if (kind === KIND_REQUEST) this.#receiveRequest(root, toHex(envelope.from), payload)
      else if (kind === KIND_REPLICA) this.#receiveReplica(root, to as string[], payload)
      else throw new FederationError('malformed', 'unknown pbft envelope kind')
      return 'accept'
    } catch (err) {
      const reason = err instanceof FedmeshError ? err.code : 'malformed'
      this.#reject(reason)
      init.logger.debug({ peer: toHex(from), reason, err: (err as Error).message }, 'pbft envelope rejected')
      return reason === 'replay' || reason === 'stale' ? 'ignore' : 'reject'
    }
  }

  #receiveReplica (root: string, to: string[], payload: Uint8Array): void {
    const m = decodePbftMessage(payload)
    if (m.from !== root) throw new FederationError('replica-mismatch', 'a node may only speak for the org its certificate chains to')
    if (m.body.type === 'Reply') {
      for (const client of to) if (this.#pending.has(client)) this.#reply(client, m)
      return
    }
    if (to.includes(this.#init.orgRoot)) this.#driver?.step(m)
  }

  #receiveRequest (root: string, node: string, payload: Uint8Array): void {
    const v = decodeCanonical(payload)
    if (!Array.isArray(v) || v.length !== 3) throw new FederationError('malformed', 'a request holds [client, timestamp, op]')
    const [client, timestamp, op] = v as unknown[]
    if (typeof client !== 'string' || client.length > PBFT_ID_LENGTH_MAX || !client.startsWith(`${root}.${node}.`)) throw new FederationError('client-mismatch', 'a client id must name the sender\'s org root and key')
    if (typeof timestamp !== 'number' || !Number.isSafeInteger(timestamp) || timestamp < 0 || !(op instanceof Uint8Array) || op.length > PBFT_OP_BYTES_MAX) {
      throw new FederationError('malformed', 'bad request timestamp or op')
    }
    this.#driver?.propose(op, { client, seq: timestamp })
  }

  #reply (client: string, m: PbftMessage): void {
    const pending = this.#pending.get(client)
    const result = pending?.collector.add(m)
    if (pending === undefined || result === undefined) return
    const [seq, position, accepted] = decodeCanonical(result) as [number, number, boolean]
    pending.resolve({ seq, position, accepted })
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

import type { PbftStatus } from '../../consensus/pbft/index.js'
import { encodeCanonical } from '../../base/codec.js'
import { toHex } from '../../base/bytes.js'
import type { NewTask } from '../org/task-service.js'
import { TaskError, finishCommand, proposeCommand } from '../org/task-commands.js'
import { CatchUp } from './catch-up.js'
import { PbftEnvelopes } from './envelopes.js'
import { FederationEpochs } from './epochs.js'
import { FederationError } from './errors.js'
import { genesisId, type EpochFile } from './genesis.js'
import { type FederationOp, TASK_REF } from './ops.js'
import type { FederationInit } from './federation-init.js'
import { type FederationReceipt, Proposer } from './proposer.js'
import { ReplicaHost } from './replica-host.js'
import { instanceId, validConfig } from './config.js'
import { FederationState } from './state.js'

// The federation in the node: one PBFT replica per member organisation (replica id = the org root
// key hex), hosted by the org's Raft leader, over the gossip topic fedmesh/pbft/v1 that every member
// subscribes to (it reaches the other orgs' leaders without knowing them). The replica's promises go
// through the org's Raft log (consensus/pbft/driver.ts), so a new leader resumes it.
//
// Who may speak for an org: a PBFT message is signed by the hosting node's key, not the org root
// (which stays offline on the founder). Every envelope on the topic carries the sender's node
// certificate; a receiver believes a node speaks for org R only when that certificate chains to R
// and R is a member of the envelope's epoch. The core's verify hook then accepts a signature "by R"
// when one of the node keys certified by R (learnt from envelopes, bounded per org) made it.
//
// Requests are signed operations (ops.ts): cross-org tasks (sanitized first), governance votes and
// audit-head anchors. Each committed batch goes into the org's Raft log as ONE entry that the org's
// federation state applies (state.ts) — creating the tasks on every org node — and the org replies
// with the results; a proposer resolves once f+1 orgs reply the same.
//
// Epochs: a passed admission or revocation starts a new PBFT instance over the new members. Every
// node follows its org's applied state: the host starts the new epoch's replica and lets the old one
// answer laggards a while; a revoked org's nodes are cut off (revokeOrg) on every member node.
//
// Federation is the facade over its parts: envelopes.ts (the wire both ways), proposer.ts (this
// node's requests and their replies), replica-host.ts (hosting the replica, following the org),
// epochs.ts and catch-up.ts.

export { FEDERATION_ENVELOPE_BYTES_MAX, PBFT_CHANNEL, PBFT_TOPIC } from './envelopes.js'
export { FederationError } from './errors.js'
export type { FederationInit } from './federation-init.js'
export type { FederationReceipt } from './proposer.js'

const TICK_MS_DEFAULT = 50
const ANCHOR_INTERVAL_MS_DEFAULT = 60_000
const ANCHOR_TIMEOUT_INTERVALS = 10
const ANCHOR_TIMEOUT_MS_MAX = 30_000

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

export class Federation {
  readonly id: string
  readonly #init: FederationInit
  readonly #epochs: FederationEpochs
  readonly #envelopes: PbftEnvelopes
  readonly #proposer: Proposer
  readonly #catchUp: CatchUp
  readonly #host: ReplicaHost
  readonly #tickMs: number
  #anchoredSeq = 0
  #anchoring = false
  #unsubscribe?: () => void
  #stopTimers: Array<() => void> = []

  constructor (init: FederationInit) {
    this.#init = init
    this.id = genesisId(init.genesis)
    const initial = validConfig(init.config ?? { genesis: this.id, epoch: 0, orgs: init.genesis.orgs })
    if (initial.genesis !== this.id) throw new FederationError('not-federated', 'the epoch config belongs to another genesis')
    const current = init.state()?.config ?? initial
    if (!current.orgs.some((o) => o.root === init.orgRoot) && initial === current) {
      throw new FederationError('not-federated', `org ${init.org} (${init.orgRoot.slice(0, 16)}) is not a member of the federation`)
    }
    const epochs = this.#epochs = new FederationEpochs(initial, current)
    const tickMs = this.#tickMs = init.tickMs ?? TICK_MS_DEFAULT
    const { viewChangeTimeoutMs, checkpointInterval } = init.genesis.pbft
    this.#envelopes = new PbftEnvelopes({
      ...init,
      epochs,
      hostFreshMs: viewChangeTimeoutMs,
      handlers: {
        // Gossiped to every node by its proposer: no replica needs to relay it to the others.
        request: (instance, op, id) => this.#host.propose(instance, op, id, { relay: false }),
        replica: (instance, m) => this.#host.step(instance, m),
        reply: (instance, to, m) => this.#proposer.received(instance, to, m),
        catchUp: (instance, root, node, kind, payload) => this.#catchUp.receive(instance, root, node, kind, payload),
        local: (to, m) => this.#proposer.deliver(to, m)
      }
    })
    this.#proposer = new Proposer({
      ...init, tickMs, viewChangeTimeoutMs, epochs, envelopes: this.#envelopes, proposeLocally: (instance, op, id) => this.#host.propose(instance, op, id)
    })
    this.#catchUp = new CatchUp({
      clock: init.clock,
      checkpointInterval,
      retryMs: Math.max(200, viewChangeTimeoutMs >> 1),
      publish: (instance, kind, payload) => { void this.#envelopes.publish(this.#envelopes.seal(instance, kind, [], payload)) },
      sendTo: (node, instance, kind, payload) => this.#envelopes.sendTo(node, this.#envelopes.seal(instance, kind, [], payload)),
      state: () => init.state(),
      initial: () => new FederationState(initial),
      apply: async (instance, seq, requests) => { await this.#host.apply(instance, { seq, requests }) },
      install: async (instance, core) => await init.installState({ config: initial, instance, core }),
      hosting: (instance) => this.#host.isHosting(instance)
    })
    this.#host = new ReplicaHost({
      ...init, federation: this.id, tickMs, checkpointInterval, viewChangeTimeoutMs, epochs, envelopes: this.#envelopes, catchUp: this.#catchUp
    })
  }

  start (): void {
    const init = this.#init
    this.#unsubscribe = this.#envelopes.listen()
    this.#stopTimers.push(init.clock.every(this.#tickMs, () => this.#host.tick()))
    if (init.auditHead !== undefined) this.#stopTimers.push(init.clock.every(init.anchorIntervalMs ?? ANCHOR_INTERVAL_MS_DEFAULT, () => this.#anchor()))
  }

  stop (): void {
    this.#proposer.stop()
    for (const stop of this.#stopTimers) stop()
    this.#unsubscribe?.()
    this.#host.stop()
  }

  status (): FederationStatus {
    const config = this.#epochs.current
    const instance = instanceId(config)
    const pbft = this.#host.status(instance)
    const { received, sent, rejected } = this.#envelopes.stats
    return {
      id: this.id,
      epoch: config.epoch,
      instance,
      orgs: config.orgs.map((o) => ({ ...o })),
      changes: (this.#init.state()?.changes ?? []).map((c) => ({ action: c.action, org: c.org.name, root: c.org.root, epoch: c.epoch })),
      replica: this.#init.orgRoot,
      member: this.#epochs.isMember(this.#init.orgRoot),
      hosting: pbft !== undefined,
      ...(pbft !== undefined ? { pbft } : {}),
      received,
      sent,
      rejected: { ...rejected }
    }
  }

  /** Orders a task across the federation; resolves once f+1 orgs applied it at the same sequence. */
  async propose (task: NewTask & { target?: string }, options: { timeoutMs?: number } = {}): Promise<FederationReceipt> {
    const init = this.#init
    const checked = proposeCommand(task, toHex(init.signer.publicKey))
    if (checked.op !== 'propose') throw new Error('unreachable')
    const target = task.target === undefined ? null : this.#epochs.memberRoot(task.target)
    const clean = init.sanitizer.sanitize({ title: checked.title, payload: JSON.parse(checked.payload) as unknown })
    const { title, payload } = clean.value as { title: string, payload: unknown }
    const op: FederationOp = { kind: 'task', title, capability: checked.capability, payload: JSON.stringify(payload), target }
    const detail: Record<string, string> = { federation: this.id, capability: checked.capability, ...(target !== null ? { target } : {}) }
    for (const [category, count] of Object.entries(clean.report.redactions)) detail[`redacted.${category}`] = String(count)
    await init.audit({ action: 'federation.task.propose', decision: 'allow', content: encodeCanonical([title, checked.capability, op.payload]), detail })
    return await this.#proposer.request(op, options)
  }

  /** This org's signed approval of admitting (name, root) or revoking an org; passes with a quorum of members. */
  async vote (proposal: { action: 'admit', name: string, root: string } | { action: 'revoke', org: string }, options: { timeoutMs?: number } = {}): Promise<FederationReceipt> {
    const op: FederationOp = proposal.action === 'admit'
      ? { kind: 'admit', name: proposal.name, root: proposal.root.toLowerCase() }
      : { kind: 'revoke', root: this.#epochs.memberRoot(proposal.org) }
    await this.#init.audit({ action: `federation.vote.${proposal.action}`, decision: 'allow', detail: { federation: this.id, root: op.root, ...(op.kind === 'admit' ? { name: op.name } : {}) } })
    return await this.#proposer.request(op, options)
  }

  /**
   * Claims the federated task at ref (epoch.seq.position, from its board copy's federation field) for
   * this node: 'applied' once ordered, 'refused' (not-the-target, already-claimed...) alike everywhere.
   */
  async claim (ref: string, options: { timeoutMs?: number } = {}): Promise<FederationReceipt> {
    return await this.#proposer.request({ kind: 'claim', ref: taskRef(ref) }, options)
  }

  /** The claimer's result for a federated task: it lands in every org's copy, the proposer's included. */
  async finish (ref: string, status: 'done' | 'failed', result: unknown, options: { timeoutMs?: number } = {}): Promise<FederationReceipt> {
    const cmd = finishCommand(status === 'done' ? 'complete' : 'fail', 't1', toHex(this.#init.signer.publicKey), result)
    if (cmd.op !== 'complete' && cmd.op !== 'fail') throw new Error('unreachable')
    const clean = this.#init.sanitizer.sanitize(JSON.parse(cmd.result) as unknown)
    return await this.#proposer.request({ kind: 'finish', ref: taskRef(ref), status, result: JSON.stringify(clean.value) }, options)
  }

  /** What an org admitted into the current epoch imports (`fedmesh federation export`). */
  epochFile (): EpochFile {
    const state = this.#init.state()
    const config = this.#epochs.current
    const core = state !== undefined && state.config.epoch === config.epoch ? state.epochStart : undefined
    return { genesis: this.id, epoch: config.epoch, orgs: config.orgs.map((o) => ({ ...o })), ...(core !== undefined ? { core: Buffer.from(core).toString('base64') } : {}) }
  }

  /** The federation state this org applied (anchors, changes), for verification. */
  get state (): FederationState | undefined {
    return this.#init.state()
  }

  /** Anchors this node's audit head in the federation state, when it moved since the last anchor. */
  #anchor (): void {
    const head = this.#init.auditHead?.()
    if (head === undefined || head.seq <= this.#anchoredSeq || this.#anchoring || !this.#epochs.isMember(this.#init.orgRoot)) return
    this.#anchoring = true
    // A lost anchor (a request caught in an epoch change) is superseded by the next one: it may hold
    // up anchoring for a few intervals, not for a whole request timeout.
    const timeoutMs = Math.min(ANCHOR_TIMEOUT_MS_MAX, ANCHOR_TIMEOUT_INTERVALS * (this.#init.anchorIntervalMs ?? ANCHOR_INTERVAL_MS_DEFAULT))
    this.#proposer.request({ kind: 'anchor', auditSeq: head.seq, head: head.hash }, { timeoutMs })
      .then((r) => { if (r.accepted) this.#anchoredSeq = head.seq })
      .catch((err: Error) => this.#init.logger.debug({ err: err.message }, 'audit head not anchored yet'))
      .finally(() => { this.#anchoring = false })
  }
}

function taskRef (ref: string): string {
  if (!TASK_REF.test(ref)) throw new TaskError('task-invalid', `a federated task ref is epoch.seq.position, got '${ref.slice(0, 40)}'`)
  return ref
}

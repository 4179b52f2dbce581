import { type CommittedBatch, type Evidence, type PbftMessage, type PbftStatus, faultsTolerated } from '../../consensus/pbft/index.js'
import { PbftDriver } from '../../consensus/pbft/driver.js'
import type { PromiseRecord } from '../../consensus/pbft/promise-log.js'
import { decodeCanonical } from '../../base/codec.js'
import { fromHex, toHex } from '../../base/bytes.js'
import { TaskError } from '../org/task-commands.js'
import type { CatchUp } from './catch-up.js'
import type { PbftEnvelopes } from './envelopes.js'
import type { FederationEpochs } from './epochs.js'
import type { FederationInit } from './federation-init.js'
import { decodeResult, isAccepted } from './proposer.js'
import { type FederationConfig, instanceId } from './config.js'
import { type MembershipChange } from './state.js'

// Following the org: this node hosts the org's replica while it leads the org's Raft group, for the
// current epoch (a new epoch starts a new replica; the previous one keeps answering laggards a while,
// then retires), applies what the replica commits through the org's board, and carries out the
// revocations the org applied.

const COMMIT_ATTEMPTS = 3
/** A replaced epoch's replica keeps answering this many view-change timeouts, so laggards finish it. */
const RETIRE_AFTER_TIMEOUTS = 10

export interface ReplicaHostInit extends Pick<FederationInit, 'signer' | 'orgRoot' | 'clock' | 'rng' | 'logger' | 'epochCore' | 'isLeader' | 'state' |
  'commitBatch' | 'installState' | 'commitPromises' | 'loadPromises' | 'audit' | 'revokeOrg' | 'conduct'> {
  /** The federation id (genesis id), for logs and audit details. */
  federation: string
  tickMs: number
  checkpointInterval: number
  viewChangeTimeoutMs: number
  epochs: FederationEpochs
  envelopes: PbftEnvelopes
  catchUp: CatchUp
}

interface Hosted { config: FederationConfig, instance: string, driver: PbftDriver, retireAtMs?: number, inactiveSinceMs?: number }

export class ReplicaHost {
  readonly #init: ReplicaHostInit
  /** Replicas this node hosts, by instance: the current epoch's and, while it retires, the previous one's. */
  readonly #hosted = new Map<string, Hosted>()
  readonly #enforced = new Set<string>()
  #starting = false

  constructor (init: ReplicaHostInit) {
    this.#init = init
  }

  isHosting (instance: string): boolean {
    return this.#hosted.has(instance)
  }

  status (instance: string): (PbftStatus & { failure?: string }) | undefined {
    return this.#hosted.get(instance)?.driver.status()
  }

  step (instance: string, m: PbftMessage): void {
    this.#hosted.get(instance)?.driver.step(m)
  }

  propose (instance: string, op: Uint8Array, id: { client: string, seq: number }, options: { relay?: boolean } = {}): void {
    this.#hosted.get(instance)?.driver.propose(op, id, options)
  }

  stop (): void {
    for (const h of this.#hosted.values()) h.driver.stop()
    this.#hosted.clear()
  }

  /** Follows the org's applied state and leadership: epochs, revocations, which replicas run here. */
  tick (): void {
    const init = this.#init
    const { epochs } = init
    const state = init.state()
    if (epochs.follow(state)) {
      init.logger.info({ federation: init.federation, epoch: epochs.current.epoch, orgs: epochs.current.orgs.map((o) => o.name) }, 'federation entered a new epoch')
    }
    for (const change of state?.changes ?? []) if (change.action === 'revoke') this.#enforceRevocation(change)
    const leader = init.isLeader()
    const current = instanceId(epochs.current)
    const nowMs = init.clock.monotonicMs()
    for (const [instance, h] of this.#hosted) {
      if (h.driver.failure !== undefined || !leader || (h.retireAtMs !== undefined && nowMs >= h.retireAtMs)) {
        h.driver.stop()
        this.#hosted.delete(instance)
        if (!leader) init.logger.info({ federation: init.federation, instance }, 'no longer the org\'s raft leader: pbft replica stopped')
      } else if (instance !== current && h.retireAtMs === undefined) {
        h.retireAtMs = nowMs + RETIRE_AFTER_TIMEOUTS * init.viewChangeTimeoutMs
      } else if (instance === current) {
        this.#askIfEnded(h, nowMs)
      }
    }
    if (leader && !this.#hosted.has(current) && !this.#starting && epochs.isMember(init.orgRoot)) {
      this.#starting = true
      this.#startDriver(epochs.current).catch((err: Error) => init.logger.error({ err: err.message }, 'pbft replica failed to start'))
        .finally(() => { this.#starting = false })
    }
  }

  /** Applies a committed batch through the org's board, keeps its checkpoint core for laggards, and audits each request. */
  async apply (instance: string, batch: Pick<CommittedBatch, 'seq' | 'requests'>): Promise<{ results: Uint8Array[], digest?: Uint8Array }> {
    const init = this.#init
    const requests = batch.requests.map((r) => ({ client: r.client, timestamp: r.timestamp, op: r.op }))
    const checkpoint = batch.seq % init.checkpointInterval === 0
    const applied = await init.commitBatch({ config: init.epochs.initial, instance, seq: batch.seq, requests, checkpoint })
    const results = applied.results
    const core = checkpoint ? init.state()?.checkpointCore(instance, batch.seq) : undefined
    if (core !== undefined) init.catchUp.retainCore(instance, batch.seq, core)
    await Promise.all(requests.map(async (r, i) => {
      const result = decodeResult(results[i]!)
      await init.audit({
        action: `federation.${opKind(r.op)}.apply`,
        decision: isAccepted(result.outcome) ? 'allow' : 'deny',
        peer: r.client.split('.')[1] ?? '',
        org: init.epochs.orgName(r.client.split('.')[0] ?? ''),
        content: r.op,
        detail: { federation: init.federation, epoch: String(result.epoch), seq: String(batch.seq), position: String(i), outcome: result.outcome, ...(result.reason !== '' ? { reason: result.reason } : {}) }
      })
    }))
    return applied
  }

  /**
   * A replica changing views for a whole timeout may be the last of an epoch the others ended by a
   * vote it missed (nobody joins its view change: their replicas of it retired): it asks how the
   * epoch ended (catch-up, f+1 matching answers), which moves the org on to the next one.
   */
  #askIfEnded (h: Hosted, nowMs: number): void {
    if (h.driver.status().active) {
      h.inactiveSinceMs = undefined
      return
    }
    h.inactiveSinceMs ??= nowMs
    if (nowMs - h.inactiveSinceMs < this.#init.viewChangeTimeoutMs) return
    void this.#init.catchUp.finishEnded(h.instance, faultsTolerated(h.config.orgs.length))
      .catch((err: Error) => this.#init.logger.debug({ err: err.message }, 'the ended epoch not finished yet'))
  }

  #enforceRevocation (change: MembershipChange): void {
    const init = this.#init
    const { root, name } = change.org
    if (this.#enforced.has(root) || init.epochs.isMember(root)) return
    this.#enforced.add(root)
    if (root === init.orgRoot) return init.logger.warn({ federation: init.federation, epoch: change.epoch }, 'this org was revoked from the federation')
    init.envelopes.forget(root)
    init.logger.warn({ federation: init.federation, org: name, root, epoch: change.epoch }, 'org revoked by federation vote')
    init.revokeOrg?.(root, name, { federation: init.federation, epoch: String(change.epoch), seq: String(change.seq) })
      .catch((err: Error) => init.logger.error({ err: err.message, org: name }, 'revocation not enforced'))
  }

  async #startDriver (config: FederationConfig): Promise<void> {
    const init = this.#init
    const instance = instanceId(config)
    const replicas = config.orgs.map((o) => o.root)
    // An admitted org's first replica: its board starts from the state the epoch began with.
    if (init.state() === undefined && init.epochCore !== undefined) await init.installState({ config: init.epochs.initial, instance, core: init.epochCore })
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
      verify: init.envelopes.verify,
      checkpointInterval: init.checkpointInterval,
      requestTimeoutTicks: Math.max(2, Math.round(init.viewChangeTimeoutMs / init.tickMs)),
      tickMs: init.tickMs,
      promiseLog: { load: async () => await init.loadPromises(instance), commit },
      host: client,
      clock: init.clock,
      logger: init.logger,
      send: (messages) => init.envelopes.send(instance, messages),
      apply: async (batch) => await this.apply(instance, batch),
      fetchState: async (seq, digest) => await init.catchUp.fetch(instance, seq, digest),
      evidence: (e) => this.#evidence(e)
    })
    if (!init.isLeader() || instance !== instanceId(init.epochs.current)) return driver.stop()
    this.#hosted.set(instance, { config, instance, driver })
  }

  #evidence (e: Evidence): void {
    const init = this.#init
    init.logger.warn({ replica: e.replica, type: e.first.body.type }, 'pbft equivocation evidence')
    void init.audit({ action: 'federation.equivocation', decision: 'deny', org: init.epochs.orgName(e.replica), detail: { replica: e.replica, type: e.first.body.type } })
      .catch(() => undefined)
    // The org signed two contradicting messages: every node it certified loses trust.
    for (const nodeKey of init.envelopes.certifiedNodes(e.replica)) init.conduct?.(nodeKey, 'equivocation')
  }
}

/** The op's kind for the audit action (task, admit, revoke, anchor), read without authenticating it. */
function opKind (op: Uint8Array): string {
  try {
    const kind = (decodeCanonical(op) as unknown[])[0]
    return typeof kind === 'string' && /^[a-z]{1,16}$/.test(kind) ? kind : 'request'
  } catch {
    return 'request'
  }
}

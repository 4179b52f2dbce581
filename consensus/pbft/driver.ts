import {
  type CommittedBatch, type Evidence, type Outbound, type PbftConfig, type PbftMessage, type PbftReady, type PbftStatus, type VerifyFn,
  PbftCore
} from './index.js'
import type { RequestId } from '../types.js'
import type { Clock } from '../../base/clock.js'
import type { Signer } from '../../base/ed25519.js'
import type { Logger } from '../../base/log.js'
import type { PromiseLogState, PromiseRecord } from './promise-log.js'

// Runs one org's PBFT replica (the pure core) on the node hosting it (the org's Raft leader), and
// unchanged for every org of the simulator (simulations/pbft-sim.ts): ticks it, feeds it, and walks
// its Ready like the Raft driver does — promises durable first, then send, then advance — while
// committed batches are applied in order off that path (each apply is another round through the
// org's Raft log, with audits): agreement on k+1 does not wait for the apply of k, and whatever
// arrives during a round rides in the next Ready, so Readies grow with load.
//
// "Durable" means committed through the org's Raft log: every promise of a Ready (and the stable
// checkpoint it records) goes into ONE `pbft-promise` entry of the task board before any message of
// that Ready is sent, so every org member holds what the org signed. Whoever leads the org next
// starts the replica from that replicated log (PbftRestore, after a ReadIndex barrier), never from
// its own store, and so cannot contradict the previous host. The executed mark (seq and the state
// digest of the latest checkpoint) rides in the next entry, before the replies and checkpoints that depend on it are sent.
//
// Each driver is one host session (`host`): it begins the session in the log before it restores, and
// stamps every record with it, so a deposed host's record that commits late is refused rather than
// restored beside what the next host promised and sent (promise-log.ts; found by the federation
// simulator at seed 326: the org resent an unsent pre-prepare for a slot it had already pre-prepared).

export interface PromiseLog {
  /** The org's replicated promise log as of now (linearizable). */
  load: () => Promise<PromiseLogState>
  /** Commits one record through the org's Raft log; resolves once applied (retries apply once). */
  commit: (record: PromiseRecord) => Promise<void>
}

export interface PbftDriverInit {
  replicaId: string
  replicas: readonly string[]
  publicKeys: ReadonlyMap<string, Uint8Array>
  signer: Signer
  verify: VerifyFn
  checkpointInterval: number
  requestTimeoutTicks: number
  tickMs: number
  promiseLog: PromiseLog
  /** This driver's host session, unique per start (the org fences earlier sessions off). */
  host: string
  clock: Clock
  logger: Logger
  send: (messages: Outbound[]) => void
  /**
   * Applies one committed batch in order: one result per request (the same on every correct
   * replica; undefined answers nobody, e.g. a request too old) and, at a checkpoint seq, the
   * digest of the application state after it.
   */
  apply: (batch: CommittedBatch) => Promise<{ results: Array<Uint8Array | undefined>, digest?: Uint8Array }>
  /** Behind a stable checkpoint: obtain and install the application state with that digest; false if not (yet). */
  fetchState: (seq: number, stateDigest: Uint8Array) => Promise<boolean>
  evidence: (e: Evidence) => void
  /** Passed to the core as they are: its window and batch bounds, and the test-only bugs the simulator must catch. */
  core?: Pick<PbftConfig, 'logWindow' | 'batchMax' | 'unsafe'>
}

export class PbftDriver {
  readonly #init: PbftDriverInit
  readonly #core: PbftCore
  #stateHash: Uint8Array
  /** Executed since the last committed record: goes into the next one. */
  #executed: PromiseRecord['executed']
  #stopTimer?: () => void
  /** Committed batches handed out by the core, applied in order by #applyQueued. */
  readonly #toApply: CommittedBatch[] = []
  #applying = false
  /** The seq of a state installed by transfer: batches up to it are not applied (nor reported) any more. */
  #installedSeq = 0
  #draining = false
  #stopped = false
  #failure: Error | undefined

  private constructor (init: PbftDriverInit, restored: PromiseLogState) {
    this.#init = init
    this.#stateHash = restored.stateHash
    this.#core = new PbftCore({
      id: init.replicaId,
      replicas: init.replicas,
      publicKeys: init.publicKeys,
      signer: init.signer,
      verify: init.verify,
      checkpointInterval: init.checkpointInterval,
      requestTimeoutTicks: init.requestTimeoutTicks,
      proposeWhenIdle: true,
      ...init.core,
      ...(restored.restore !== undefined ? { restore: restored.restore } : {})
    })
  }

  static async start (init: PbftDriverInit): Promise<PbftDriver> {
    await init.promiseLog.commit({ promises: [], host: init.host, begin: true })
    const restored = await init.promiseLog.load()
    const driver = new PbftDriver(init, restored)
    driver.#stopTimer = init.clock.every(init.tickMs, () => {
      driver.#core.tick()
      driver.#drain()
    })
    init.logger.info({ replica: init.replicaId, promises: restored.restore?.promises.length ?? 0, ...driver.status() }, 'pbft replica started from the org\'s promise log')
    return driver
  }

  step (m: PbftMessage): void {
    if (this.#stopped) return
    this.#core.step(m)
    this.#drain()
  }

  propose (op: Uint8Array, id: RequestId, options: { relay?: boolean } = {}): boolean {
    if (this.#stopped) return false
    const accepted = this.#core.propose(op, id, options).ok
    this.#drain()
    return accepted
  }

  /** Why it stopped, if on a failure (a promise that could not be committed): start a new driver from the log. */
  get failure (): Error | undefined { return this.#failure }

  status (): PbftStatus & { failure?: string } {
    return { ...this.#core.status(), ...(this.#failure !== undefined ? { failure: this.#failure.message } : {}) }
  }

  /** Stops ticking; a Ready in flight finishes its persist/apply but sends nothing more. */
  stop (): void {
    this.#stopped = true
    this.#stopTimer?.()
  }

  #drain (): void {
    if (this.#draining || this.#stopped || (!this.#core.hasReady() && this.#executed === undefined)) return
    this.#draining = true
    this.#walk().catch((err: Error) => this.#fail(err)).finally(() => {
      this.#draining = false
      // An apply that finished as the walk ended left its replies (or executed mark) behind.
      this.#drain()
    })
  }

  #fail (err: Error): void {
    this.#failure = err
    this.#init.logger.error({ err: err.message }, 'pbft replica stopped on a failure')
    this.stop()
  }

  async #walk (): Promise<void> {
    while (!this.#stopped && (this.#core.hasReady() || this.#executed !== undefined)) {
      // Nothing more to say: still make the executed mark durable, so a successor does not lag.
      if (!this.#core.hasReady()) {
        await this.#persist({ promises: [] })
        continue
      }
      const rd = this.#core.ready()
      await this.#persist(rd)
      if (this.#stopped) return
      if (rd.messages.length > 0) this.#init.send(rd.messages)
      if (rd.committed.length > 0) {
        this.#toApply.push(...rd.committed)
        this.#applyQueued()
      }
      if (rd.fetchState !== undefined) this.#fetchState(rd.fetchState)
      for (const e of rd.evidence) this.#init.evidence(e)
      this.#core.advance(rd)
    }
  }

  async #persist (rd: Pick<PbftReady, 'promises' | 'stable'>): Promise<void> {
    const executed = this.#executed
    if (rd.promises.length === 0 && rd.stable === undefined && executed === undefined) return
    await this.#init.promiseLog.commit({
      promises: rd.promises, ...(rd.stable !== undefined ? { stable: rd.stable } : {}), ...(executed !== undefined ? { executed } : {}), host: this.#init.host
    })
    // An apply that finished meanwhile set a later mark: it goes into the next entry.
    if (this.#executed === executed) this.#executed = undefined
  }

  /** Applies the queued batches one after another; each applied one's replies and checkpoint leave in a later Ready. */
  #applyQueued (): void {
    if (this.#applying || this.#stopped) return
    this.#applying = true
    const run = async (): Promise<void> => {
      for (let batch = this.#toApply.shift(); batch !== undefined && !this.#stopped; batch = this.#toApply.shift()) {
        if (batch.seq > this.#installedSeq) await this.#apply(batch)
        this.#drain()
      }
    }
    run().catch((err: Error) => this.#fail(err)).finally(() => { this.#applying = false })
  }

  async #apply (batch: CommittedBatch): Promise<void> {
    const { results, digest } = await this.#init.apply(batch)
    // A state transfer installed a later state meanwhile: the core no longer waits for this one.
    if (this.#stopped || batch.seq <= this.#installedSeq) return
    const checkpoint = batch.seq % this.#init.checkpointInterval === 0
    if (checkpoint && digest === undefined) throw new Error(`no state digest for checkpoint ${batch.seq}`)
    if (digest !== undefined) this.#stateHash = digest
    this.#executed = { seq: batch.seq, stateHash: this.#stateHash }
    this.#core.applied(batch.seq, results, checkpoint ? this.#stateHash : undefined)
  }

  /** State transfer in the background; the core keeps taking part in agreement meanwhile. */
  #fetchState ({ seq, stateDigest }: { seq: number, stateDigest: Uint8Array }): void {
    this.#init.logger.info({ seq }, 'pbft replica is behind a stable checkpoint: fetching the state')
    this.#init.fetchState(seq, stateDigest).then((installed) => {
      if (!installed || this.#stopped || !this.#core.stateInstalled(seq, stateDigest)) return
      this.#installedSeq = Math.max(this.#installedSeq, seq)
      this.#stateHash = stateDigest
      this.#executed = { seq, stateHash: stateDigest }
      this.#init.logger.info({ seq }, 'pbft replica installed the state of a stable checkpoint')
      this.#drain()
    }).catch((err: Error) => this.#init.logger.warn({ err: err.message, seq }, 'state transfer failed; retried at the next checkpoint announcement'))
  }
}

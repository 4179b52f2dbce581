import assert from 'node:assert/strict'
import {
  type CommittedBatch, type Evidence, type Outbound, type PbftMessage, type PbftReady, type PbftRestore, type PbftStatus, type Signed, type Checkpoint, type StableCheckpoint, type VerifyFn,
  PbftCore, decodePbftMessage, encodePbftMessage, sha256
} from '../consensus/pbft/index.js'
import type { RequestId } from '../consensus/types.js'
import type { Clock } from './clock.js'
import { decodeCanonical, encodeCanonical } from './codec.js'
import type { Signer } from './identity.js'
import type { Logger } from './log.js'
import type { BatchOp, Storage } from './storage.js'

// Runs one org's PBFT replica (the pure core) on the node hosting it: ticks it, feeds it, and walks
// its Ready like the Raft driver does — promises durable first, then send, then apply, then advance.
//
// GAP (issue 6): promises, the stable checkpoint and the executed sequence are kept in THIS node's
// storage, not in the org's Raft log. A new Raft leader of the org starts the replica from its own
// (usually empty) promise log, so it could contradict what the previous leader signed for the org.
// Committing promises through the org's Raft log is the next step; the keys below are the format.

export interface PbftDriverInit {
  /** Names the federation: keys are per genesis, so a new genesis starts a fresh replica. */
  federationId: string
  replicaId: string
  replicas: readonly string[]
  publicKeys: ReadonlyMap<string, Uint8Array>
  signer: Signer
  verify: VerifyFn
  checkpointInterval: number
  requestTimeoutTicks: number
  tickMs: number
  storage: Storage
  clock: Clock
  logger: Logger
  send: (messages: Outbound[]) => void
  /** Applies one committed batch in order; one result per request (the same on every correct replica). */
  apply: (batch: CommittedBatch) => Promise<Uint8Array[]>
  evidence: (e: Evidence) => void
}

const PROMISES_MAX = 100_000

export class PbftDriver {
  readonly #init: PbftDriverInit
  readonly #core: PbftCore
  readonly #prefix: string
  /** Persisted promises (storage key, message), oldest first: pruned at each stable checkpoint. */
  #promises: Array<{ key: string, message: PbftMessage }>
  #promiseCounter: number
  #stateHash: Uint8Array
  #stopTimer?: () => void
  #draining = false
  #stopped = false
  #failure: Error | undefined

  private constructor (init: PbftDriverInit, restored: Restored) {
    this.#init = init
    this.#prefix = `pbft/${init.federationId}/`
    this.#promises = restored.promises
    this.#promiseCounter = restored.promiseCounter
    this.#stateHash = restored.stateHash
    this.#core = new PbftCore({
      id: init.replicaId,
      replicas: init.replicas,
      publicKeys: init.publicKeys,
      signer: init.signer,
      verify: init.verify,
      checkpointInterval: init.checkpointInterval,
      requestTimeoutTicks: init.requestTimeoutTicks,
      ...(restored.restore !== undefined ? { restore: restored.restore } : {})
    })
  }

  static async start (init: PbftDriverInit): Promise<PbftDriver> {
    const driver = new PbftDriver(init, await load(init.storage, `pbft/${init.federationId}/`))
    driver.#stopTimer = init.clock.every(init.tickMs, () => {
      driver.#core.tick()
      driver.#drain()
    })
    init.logger.info({ replica: init.replicaId, ...driver.status() }, 'pbft replica started')
    return driver
  }

  step (m: PbftMessage): void {
    if (this.#stopped) return
    this.#core.step(m)
    this.#drain()
  }

  propose (op: Uint8Array, id: RequestId): boolean {
    if (this.#stopped) return false
    const accepted = this.#core.propose(op, id).ok
    this.#drain()
    return accepted
  }

  status (): PbftStatus & { failure?: string } {
    return { ...this.#core.status(), ...(this.#failure !== undefined ? { failure: this.#failure.message } : {}) }
  }

  /** Stops ticking; a Ready in flight finishes its persist/apply but sends nothing more. */
  stop (): void {
    this.#stopped = true
    this.#stopTimer?.()
  }

  #drain (): void {
    if (this.#draining || this.#stopped || !this.#core.hasReady()) return
    this.#draining = true
    this.#walk().catch((err: Error) => {
      this.#failure = err
      this.#init.logger.error({ err: err.message }, 'pbft replica stopped on a failure')
      this.stop()
    }).finally(() => { this.#draining = false })
  }

  async #walk (): Promise<void> {
    while (!this.#stopped && this.#core.hasReady()) {
      const rd = this.#core.ready()
      await this.#persist(rd)
      if (this.#stopped) return
      if (rd.messages.length > 0) this.#init.send(rd.messages)
      for (const batch of rd.committed) await this.#apply(batch)
      if (rd.fetchState !== undefined) this.#init.logger.warn({ seq: rd.fetchState.seq }, 'pbft replica is behind a stable checkpoint; state transfer is not implemented yet')
      for (const e of rd.evidence) this.#init.evidence(e)
      this.#core.advance(rd)
    }
  }

  async #persist (rd: PbftReady): Promise<void> {
    if (rd.promises.length === 0 && rd.stable === undefined) return
    const ops: BatchOp[] = []
    for (const message of rd.promises) {
      const key = `${this.#prefix}promise/${String(++this.#promiseCounter).padStart(20, '0')}`
      ops.push({ type: 'put', key, value: encodePbftMessage(message) })
      this.#promises.push({ key, message })
    }
    if (rd.stable !== undefined) {
      ops.push({ type: 'put', key: `${this.#prefix}stable`, value: encodeStable(rd.stable) })
      const stableSeq = rd.stable.seq
      const keep = this.#promises.filter((p) => !(seqOf(p.message) <= stableSeq))
      for (const p of this.#promises) if (seqOf(p.message) <= stableSeq) ops.push({ type: 'del', key: p.key })
      this.#promises = keep
    }
    assert.ok(this.#promises.length <= PROMISES_MAX, 'pbft promise log exceeds its bound (no stable checkpoint?)')
    await this.#init.storage.batch(ops)
  }

  async #apply (batch: CommittedBatch): Promise<void> {
    const results = await this.#init.apply(batch)
    // The state digest chains every executed batch: equal on correct replicas, whatever their boards hold.
    this.#stateHash = sha256(encodeCanonical([this.#stateHash, batch.seq, batch.digest]))
    await this.#init.storage.batch([{ type: 'put', key: `${this.#prefix}executed`, value: encodeCanonical([batch.seq, this.#stateHash]) }])
    if (this.#stopped) return
    this.#core.applied(batch.seq, results, batch.seq % this.#init.checkpointInterval === 0 ? this.#stateHash : undefined)
  }
}

interface Restored { restore?: PbftRestore, promises: Array<{ key: string, message: PbftMessage }>, promiseCounter: number, stateHash: Uint8Array }

async function load (storage: Storage, prefix: string): Promise<Restored> {
  const promises: Array<{ key: string, message: PbftMessage }> = []
  let promiseCounter = 0
  for await (const [key, value] of storage.iterate(`${prefix}promise/`)) {
    promises.push({ key, message: decodePbftMessage(value) })
    promiseCounter = Number(key.slice(key.lastIndexOf('/') + 1))
  }
  const stableBytes = await storage.get(`${prefix}stable`)
  const executedBytes = await storage.get(`${prefix}executed`)
  const [executedSeq, stateHash] = executedBytes === undefined ? [0, new Uint8Array(32)] : decodeCanonical(executedBytes) as [number, Uint8Array]
  if (promises.length === 0 && stableBytes === undefined && executedSeq === 0) return { promises, promiseCounter, stateHash }
  const stable = stableBytes === undefined ? undefined : decodeStable(stableBytes)
  return { restore: { promises: promises.map((p) => p.message), executedSeq, ...(stable !== undefined ? { stable } : {}) }, promises, promiseCounter, stateHash }
}

function seqOf (m: PbftMessage): number {
  const b = m.body
  return b.type === 'PrePrepare' || b.type === 'Prepare' || b.type === 'Commit' || b.type === 'Checkpoint' ? b.seq : Infinity
}

function encodeStable (s: StableCheckpoint): Uint8Array {
  return encodeCanonical([s.seq, s.stateDigest, s.proof.map(encodePbftMessage)])
}

function decodeStable (bytes: Uint8Array): StableCheckpoint {
  const [seq, stateDigest, proof] = decodeCanonical(bytes) as [number, Uint8Array, Uint8Array[]]
  return { seq, stateDigest, proof: proof.map((p) => decodePbftMessage(p) as Signed<Checkpoint>) }
}

import type { Checkpoint, ClientRequest, PbftMessage, Signed } from './messages.js'

// The Ready contract and the outbox that gathers one between two ready() calls: every part of the
// core writes its promises, messages, executed batches and evidence here, in the order it made them.

export interface Outbound { to: string, message: PbftMessage }
/** A committed batch, in seq order: apply each request (deduplicated by the application's session table), then call applied(). */
export interface CommittedBatch { seq: number, view: number, digest: Uint8Array, requests: ClientRequest[] }
/** Two validly signed, different messages from one replica for one (type, view, seq). */
export interface Evidence { replica: string, first: PbftMessage, second: PbftMessage }
export interface StableCheckpoint { seq: number, stateDigest: Uint8Array, proof: Array<Signed<Checkpoint>> }

export interface PbftReady {
  /** Persist (the org's Raft log) before sending anything. */
  promises: PbftMessage[]
  /** Promises at or below stable.seq may be discarded once this is persisted with them. */
  stable?: StableCheckpoint
  messages: Outbound[]
  committed: CommittedBatch[]
  /** Behind the stable checkpoint: obtain a state whose digest is stateDigest, then call stateInstalled(). */
  fetchState?: { seq: number, stateDigest: Uint8Array }
  evidence: Evidence[]
}

export class Outbox {
  readonly #id: string
  readonly #replicas: readonly string[]
  #promises: PbftMessage[] = []
  #messages: Outbound[] = []
  #committed: CommittedBatch[] = []
  #evidence: Evidence[] = []
  #stable: StableCheckpoint | undefined

  constructor (id: string, replicas: readonly string[]) {
    this.#id = id
    this.#replicas = replicas
  }

  promise (...messages: PbftMessage[]): void {
    this.#promises.push(...messages)
  }

  send (to: string, message: PbftMessage): void {
    this.#messages.push({ to, message })
  }

  /** To every other replica, one Outbound each (the shell may group them). */
  broadcast (message: PbftMessage): void {
    for (const r of this.#replicas) if (r !== this.#id) this.send(r, message)
  }

  executed (batch: CommittedBatch): void {
    this.#committed.push(batch)
  }

  evidence (e: Evidence): void {
    this.#evidence.push(e)
  }

  stable (stable: StableCheckpoint): void {
    this.#stable = stable
  }

  isEmpty (): boolean {
    return this.#promises.length === 0 && this.#messages.length === 0 && this.#committed.length === 0 && this.#evidence.length === 0 && this.#stable === undefined
  }

  /** Everything gathered since the last take, as a Ready (fetchState is the core's to add). */
  take (): PbftReady {
    const rd: PbftReady = { promises: this.#promises, messages: this.#messages, committed: this.#committed, evidence: this.#evidence }
    if (this.#stable !== undefined) rd.stable = this.#stable
    this.#promises = []
    this.#messages = []
    this.#committed = []
    this.#evidence = []
    this.#stable = undefined
    return rd
  }
}

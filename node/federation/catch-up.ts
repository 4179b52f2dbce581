import { PBFT_OP_BYTES_MAX, sha256 } from '../../consensus/pbft/index.js'
import type { Clock } from '../../base/clock.js'
import { decodeCanonical, encodeCanonical } from '../../base/codec.js'
import { FedmeshError } from '../../base/errors.js'
import { type BatchRequest, type FederationBatch, FederationState, RETAINED_BATCHES_MAX, batchBytes } from './state.js'
import { bytesEqual, fromHex, toHex } from '../../base/bytes.js'

// Catching a replica up past a stable checkpoint it fell behind (a new org leader restoring an old
// promise log, an org cut off for a while). The checkpoint's digest, certified by a quorum of orgs,
// is the digest of the federation state core after that seq, so anything another host sends can be
// checked against it before this org takes it:
//  - batches: the committed batches from this org's next seq up to the checkpoint, replayed first on
//    a copy of the org's federation state; if the copy ends at the certified digest, they are applied
//    for real (every task lands in this org's board too) — every org node keeps its recent batches
//    for this (FederationState.retainedBatch), so a host that restarted, or a node of any org, answers;
//  - else the core: the state at the checkpoint itself (tasks ordered in the skipped range are then
//    missing from this org's board: it was too far behind).
// A laggard of an epoch that a vote ended may find no checkpoint after its seq at all (the others
// left the instance at the vote, their replicas retired): it asks how the instance ended, and takes
// the batches up to the vote once f+1 orgs sent the same ones (one of them is correct) and they do
// end the epoch when replayed on a copy.
// Requests are gossiped (the laggard does not know who hosts what); answers go to the asking node.

export const KIND_BATCHES_REQUEST = 2
export const KIND_BATCHES = 3
export const KIND_CORE_REQUEST = 4
export const KIND_CORE = 5
export const KIND_ENDING_REQUEST = 6
export const KIND_ENDING = 7
export const CATCH_UP_KINDS = new Set([KIND_BATCHES_REQUEST, KIND_BATCHES, KIND_CORE_REQUEST, KIND_CORE, KIND_ENDING_REQUEST, KIND_ENDING])

/** One answer's batches: they travel in one envelope. */
const BATCHES_REPLY_BYTES_MAX = 900 * 1024
const CHECKPOINT_CORES_MAX = 4
const BATCHES_WAIT_MS = 5_000
const CORE_WAIT_MS = 30_000
const ANSWER_INTERVAL_MS = 1_000

export interface CatchUpInit {
  clock: Clock
  checkpointInterval: number
  retryMs: number
  /** Gossips a catch-up message of an instance to every node. */
  publish: (instance: string, kind: number, payload: Uint8Array) => void
  /** Sends a catch-up message of an instance to one node. */
  sendTo: (node: Uint8Array, instance: string, kind: number, payload: Uint8Array) => void
  /** The org's federation state as applied here. */
  state: () => FederationState | undefined
  /** A fresh state of the federation's first instance (an org that applied nothing yet replays from it). */
  initial: () => FederationState
  /** Applies one batch through the normal path (the org's Raft log, audits). */
  apply: (instance: string, seq: number, requests: BatchRequest[]) => Promise<void>
  /** Installs a state core of the instance (digest already checked). */
  install: (instance: string, core: Uint8Array) => Promise<void>
  /** False once the replica of this instance stopped here (stop asking). */
  hosting: (instance: string) => boolean
  /** How long to wait for batches before asking for the core instead, and for the core. */
  batchesWaitMs?: number
  coreWaitMs?: number
}

interface Waiting { instance: string, digest: string, resolve: (answer: Uint8Array) => void }
/** An ending question: the orgs behind each distinct answer, until f+1 agree. */
interface Ending { from: number, f: number, answers: Map<string, Set<string>>, resolve: (batches: Uint8Array) => void }

export class CatchUp {
  readonly #init: CatchUpInit
  readonly #cores = new Map<string, Uint8Array>()
  readonly #answered = new Map<string, number>()
  readonly #waiting = new Map<string, Waiting>()
  readonly #fetching = new Map<string, Promise<boolean>>()
  readonly #endings = new Map<string, Ending>()
  #installs = 0
  #replays = 0

  constructor (init: CatchUpInit) {
    this.#init = init
  }

  get stats (): { replayedRanges: number, installedCores: number } { return { replayedRanges: this.#replays, installedCores: this.#installs } }

  /** A host keeps the state core at each checkpoint (the latest few) for laggards too far behind for batches. */
  retainCore (instance: string, seq: number, core: Uint8Array): void {
    this.#cores.set(`${instance}:${seq}`, core)
    if (this.#cores.size > CHECKPOINT_CORES_MAX) this.#cores.delete(this.#cores.keys().next().value!)
  }

  /** Brings this org to the stable checkpoint `seq` (certified `digest`); false if nobody answered in time. */
  async fetch (instance: string, seq: number, digest: Uint8Array): Promise<boolean> {
    // One fetch at a time per instance: two at once (the replica asking again meanwhile) shared one
    // question, and the one whose answer the other took fell back to the core and skipped tasks.
    const run = (this.#fetching.get(instance) ?? Promise.resolve(true)).catch(() => false).then(async () => await this.#fetchOnce(instance, seq, digest))
    this.#fetching.set(instance, run)
    try {
      return await run
    } finally {
      if (this.#fetching.get(instance) === run) this.#fetching.delete(instance)
    }
  }

  async #fetchOnce (instance: string, seq: number, digest: Uint8Array): Promise<boolean> {
    // The org's state may move on meanwhile (the replica executing batches committed by certificates,
    // an old host's apply landing): a question about an older seq is then stale, so ask again from
    // the new one for the rest of the wait rather than fall back to the core, which skips tasks.
    const deadlineMs = this.#init.clock.monotonicMs() + (this.#init.batchesWaitMs ?? BATCHES_WAIT_MS)
    for (;;) {
      const from = this.#nextSeq(instance)
      // The board already went past it (it applied batches the replica had not marked executed), or
      // past the whole instance (a vote ended it): a replica is hosted only in epochs its org reached.
      if ((from !== undefined && from > seq) || this.#left(instance)) return true
      const waitMs = deadlineMs - this.#init.clock.monotonicMs()
      if (from === undefined || waitMs <= 0) break
      const reply = await this.#ask(instance, `b:${instance}:${from}:${seq}`, KIND_BATCHES_REQUEST, encodeCanonical([from, seq]), toHex(digest), waitMs, () => this.#nextSeq(instance) !== from)
      if (reply !== undefined) {
        for (const [i, requests] of decodeBatches(reply).entries()) await this.#init.apply(instance, from + i, requests)
        this.#replays++
        return true
      }
      if (this.#nextSeq(instance) === from) break
    }
    const core = await this.#ask(instance, `c:${instance}:${seq}`, KIND_CORE_REQUEST, encodeCanonical([seq]), toHex(digest), this.#init.coreWaitMs ?? CORE_WAIT_MS)
    if (core === undefined) return false
    await this.#init.install(instance, core)
    this.#installs++
    return true
  }

  /**
   * Finishes an instance that other orgs ended by a vote while this org lagged (f: the faults the
   * instance tolerates); true once this org applied the batches up to that vote.
   */
  async finishEnded (instance: string, f: number): Promise<boolean> {
    const from = this.#nextSeq(instance)
    if (from === undefined || this.#endings.has(instance)) return false
    const init = this.#init
    const batches = await new Promise<Uint8Array | undefined>((resolve) => {
      this.#endings.set(instance, { from, f, answers: new Map(), resolve })
      const deadlineMs = init.clock.monotonicMs() + (init.batchesWaitMs ?? BATCHES_WAIT_MS)
      const loop = async (): Promise<void> => {
        while (this.#endings.has(instance) && init.hosting(instance) && init.clock.monotonicMs() < deadlineMs) {
          init.publish(instance, KIND_ENDING_REQUEST, encodeCanonical([from]))
          await init.clock.sleep(init.retryMs)
        }
        resolve(undefined)
      }
      void loop()
    })
    this.#endings.delete(instance)
    if (batches === undefined || this.#nextSeq(instance) !== from) return false
    for (const [i, requests] of decodeBatches(batches).entries()) await this.#init.apply(instance, from + i, requests)
    this.#replays++
    return true
  }

  /** A catch-up message of a known instance from `node`, certified by the org `root` (already authenticated as a member's). */
  receive (instance: string, root: string, node: Uint8Array, kind: number, payload: Uint8Array): void {
    const v = decodeCanonical(payload)
    const count = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0
    if (!Array.isArray(v) || !count(v[0])) throw new CatchUpError('malformed', 'a catch-up message starts with a seq')
    switch (kind) {
      case KIND_BATCHES_REQUEST:
        if (v.length !== 2 || !count(v[1]) || v[1] < v[0]) throw new CatchUpError('malformed', 'a batches request holds [from, to]')
        return this.#answerBatches(instance, node, v[0], v[1])
      case KIND_CORE_REQUEST:
        if (v.length !== 1) throw new CatchUpError('malformed', 'a core request holds [seq]')
        return this.#answerCore(instance, node, v[0])
      case KIND_ENDING_REQUEST:
        if (v.length !== 1) throw new CatchUpError('malformed', 'an ending request holds [from]')
        return this.#answerEnding(instance, node, v[0])
      case KIND_ENDING:
        if (v.length !== 3 || !count(v[1]) || !(v[2] instanceof Uint8Array)) throw new CatchUpError('malformed', 'an ending holds [from, seq, batches]')
        return this.#ending(instance, root, v[0], v[2])
      case KIND_BATCHES: case KIND_CORE: {
        if (v.length !== 3 || !(v[2] instanceof Uint8Array)) throw new CatchUpError('malformed', 'an answer holds [from, to, bytes]')
        const key = kind === KIND_CORE ? `c:${instance}:${v[0]}` : `b:${instance}:${v[0]}:${String(v[1])}`
        const waiting = this.#waiting.get(key)
        if (waiting === undefined) return
        const valid = kind === KIND_CORE ? toHex(sha256(v[2])) === waiting.digest : this.#replaysTo(instance, v[0], v[2], waiting.digest)
        if (valid) waiting.resolve(v[2])
      }
    }
  }

  #ending (instance: string, root: string, from: number, bytes: Uint8Array): void {
    const ending = this.#endings.get(instance)
    if (ending === undefined || ending.from !== from) return
    const key = toHex(sha256(bytes))
    let orgs = ending.answers.get(key)
    if (orgs === undefined) {
      // Checked once per distinct answer: it must take this org's state out of the instance.
      if (!this.#endsInstance(instance, from, bytes)) return
      ending.answers.set(key, orgs = new Set())
    }
    orgs.add(root)
    if (orgs.size >= ending.f + 1) ending.resolve(bytes)
  }

  /** True if these batches, replayed on a copy of the org's state from `from`, end its epoch. */
  #endsInstance (instance: string, from: number, bytes: Uint8Array): boolean {
    return this.#replayCopy(instance, from, bytes, (copy) => copy.instance !== instance)
  }

  /** Replays batches on a copy of the org's state of instance from `from`; the verdict of `check` on the copy, false if any of it fails. */
  #replayCopy (instance: string, from: number, bytes: Uint8Array, check: (copy: FederationState, last: Uint8Array | undefined, to: number) => boolean): boolean {
    const state = this.#stateOf(instance)
    if (state === undefined || state.lastSeq + 1 !== from) return false
    try {
      const copy = FederationState.decode(decodeCanonical(encodeCanonical(state.encode())))
      const batches = decodeBatches(bytes)
      let last: Uint8Array | undefined
      for (const [i, requests] of batches.entries()) {
        const seq = from + i
        // The instance they were ordered in, also past a vote that ended it (the copy then enters the next epoch).
        const batch: FederationBatch = { config: copy.config, instance, seq, requests, checkpoint: seq % this.#init.checkpointInterval === 0 }
        last = copy.apply(batch).digest
      }
      return check(copy, last, from + batches.length - 1)
    } catch {
      return false
    }
  }

  /** True once the org's state moved on from this instance into a later epoch. */
  #left (instance: string): boolean {
    const state = this.#init.state()
    return state !== undefined && state.instance !== instance
  }

  /** The seq this org applies next in the instance, or undefined when it is in another one. */
  #nextSeq (instance: string): number | undefined {
    const state = this.#stateOf(instance)
    return state === undefined ? undefined : state.lastSeq + 1
  }

  async #ask (instance: string, key: string, kind: number, request: Uint8Array, digest: string, waitMs: number, stale: () => boolean = () => false): Promise<Uint8Array | undefined> {
    const init = this.#init
    const answer = await new Promise<Uint8Array | undefined>((resolve) => {
      this.#waiting.set(key, { instance, digest, resolve })
      const deadlineMs = init.clock.monotonicMs() + waitMs
      const loop = async (): Promise<void> => {
        while (this.#waiting.has(key) && init.hosting(instance) && init.clock.monotonicMs() < deadlineMs && !stale()) {
          init.publish(instance, kind, request)
          await init.clock.sleep(init.retryMs)
        }
        resolve(undefined)
      }
      void loop()
    })
    this.#waiting.delete(key)
    return answer
  }

  /**
   * The org's state of this instance to replay batches on: what it applied, or — before its first
   * batch — the instance's empty state (so an org that fell behind at once still gets every task).
   */
  #stateOf (instance: string): FederationState | undefined {
    const state = this.#init.state()
    if (state !== undefined) return state.instance === instance ? state : undefined
    const initial = this.#init.initial()
    return initial.instance === instance ? initial : undefined
  }

  /** True if these batches, replayed on a copy of the org's state, end at the certified digest. */
  #replaysTo (instance: string, from: number, bytes: Uint8Array, digest: string): boolean {
    return this.#replayCopy(instance, from, bytes, (_copy, last, to) => last !== undefined && to % this.#init.checkpointInterval === 0 && bytesEqual(last, fromHex(digest)))
  }

  #answerBatches (instance: string, node: Uint8Array, from: number, to: number): void {
    if (!this.#mayAnswer(`b:${toHex(node)}:${from}:${to}`)) return
    const batches = this.#retained(instance, from, to)
    if (batches !== undefined) this.#init.sendTo(node, instance, KIND_BATCHES, encodeCanonical([from, to, batches]))
  }

  /** How the instance ended here, when it did: the batches from `from` up to the vote that ended it. */
  #answerEnding (instance: string, node: Uint8Array, from: number): void {
    const closing = this.#init.state()?.closing
    if (closing?.instance !== instance || closing.seq < from || !this.#mayAnswer(`e:${toHex(node)}:${from}`)) return
    const batches = this.#retained(instance, from, closing.seq)
    if (batches !== undefined) this.#init.sendTo(node, instance, KIND_ENDING, encodeCanonical([from, closing.seq, batches]))
  }

  /** The batches from..to of instance as this node retained them, encoded; undefined if it lacks one or they are too large for one answer. */
  #retained (instance: string, from: number, to: number): Uint8Array | undefined {
    const state = this.#init.state()
    if (state === undefined) return undefined
    const out: BatchRequest[][] = []
    let bytes = 0
    for (let seq = from; seq <= to; seq++) {
      const requests = state.retainedBatch(instance, seq)
      if (requests === undefined) return undefined
      bytes += batchBytes(requests)
      if (bytes > BATCHES_REPLY_BYTES_MAX) return undefined
      out.push(requests)
    }
    return encodeCanonical(out.map((b) => b.map((r) => [r.client, r.timestamp, r.op])))
  }

  #answerCore (instance: string, node: Uint8Array, seq: number): void {
    const core = this.#cores.get(`${instance}:${seq}`) ?? this.#init.state()?.checkpointCore(instance, seq)
    if (core === undefined || !this.#mayAnswer(`c:${toHex(node)}:${seq}`)) return
    this.#init.sendTo(node, instance, KIND_CORE, encodeCanonical([seq, seq, core]))
  }

  /** One answer per question a second: a laggard (or a liar) asking again costs nothing more. */
  #mayAnswer (key: string): boolean {
    const nowMs = this.#init.clock.monotonicMs()
    if (nowMs - (this.#answered.get(key) ?? -Infinity) < ANSWER_INTERVAL_MS) return false
    this.#answered.set(key, nowMs)
    if (this.#answered.size > 64) this.#answered.delete(this.#answered.keys().next().value!)
    return true
  }
}

export class CatchUpError extends FedmeshError {}

function decodeBatches (bytes: Uint8Array): BatchRequest[][] {
  const v = decodeCanonical(bytes, () => new CatchUpError('malformed', 'undecodable batches'))
  if (!Array.isArray(v) || v.length > RETAINED_BATCHES_MAX) throw new CatchUpError('malformed', 'bad batches')
  return v.map((batch: unknown) => {
    if (!Array.isArray(batch)) throw new CatchUpError('malformed', 'bad batch')
    return batch.map((r: unknown) => {
      if (!Array.isArray(r) || r.length !== 3 || typeof r[0] !== 'string' || typeof r[1] !== 'number' || !(r[2] instanceof Uint8Array) || r[2].length > PBFT_OP_BYTES_MAX) {
        throw new CatchUpError('malformed', 'bad request in batch')
      }
      return { client: r[0], timestamp: r[1], op: r[2] }
    })
  })
}

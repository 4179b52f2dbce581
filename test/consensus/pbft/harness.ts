import { encode } from 'cborg'
import {
  type ClientRequest, type CommittedBatch, type Evidence, type PbftConfig, PbftCore, type PbftMessage, type PbftReady,
  ReplyCollector, decodePbftMessage, encodePbftMessage, faultsTolerated, sha256
} from '../../../consensus/pbft/index.js'
import { SessionTable } from '../../../consensus/raft/dedup.js'
import { NodeIdentity, verify } from '../../../base/ed25519.js'

// An in-process federation of PBFT replicas for story-style tests (as the Raft harness): every
// message goes through the wire codec; cut/isolate/hook shape delivery; stabilize() runs to
// quiescence. Each replica's application appends request ops to a list, deduplicated by a session table.

export function identityFor (id: string): NodeIdentity {
  return new NodeIdentity(sha256(new TextEncoder().encode(`pbft-test-key:${id}`)))
}

export class TestReplica {
  core: PbftCore
  readonly identity: NodeIdentity
  /** Applied ops (as strings), in execution order. */
  applied: string[] = []
  sessions = new SessionTable(64)
  readonly committed: CommittedBatch[] = []
  readonly evidence: Evidence[] = []
  readonly promises: PbftMessage[] = []
  fetches = 0

  constructor (readonly id: string, readonly network: TestNetwork, readonly options: Partial<PbftConfig>) {
    this.identity = identityFor(id)
    this.core = this.#newCore()
  }

  #newCore (restore?: PbftConfig['restore']): PbftCore {
    return new PbftCore({
      id: this.id,
      replicas: this.network.ids,
      publicKeys: this.network.publicKeys,
      signer: this.identity,
      checkpointInterval: 4,
      logWindow: 8,
      requestTimeoutTicks: 10,
      ...this.options,
      ...(restore === undefined ? {} : { restore })
    })
  }

  /** Crash and restart from the persisted promises (the application state survives, as the org's Raft log does). */
  restart (): void {
    this.core = this.#newCore({ promises: [...this.promises], executedSeq: this.core.status().lastExecuted })
  }

  stateDigest (): Uint8Array {
    return sha256(encode([this.applied, this.sessions.encode()]))
  }

  process (rd: PbftReady): void {
    this.promises.push(...rd.promises)
    this.evidence.push(...rd.evidence)
    for (const b of rd.committed) {
      this.committed.push(b)
      const results = b.requests.map((r) => {
        const outcome = this.sessions.applyOnce({ client: r.client, seq: r.timestamp }, () => {
          this.applied.push(new TextDecoder().decode(r.op))
          return encode(this.applied.length)
        })
        return outcome.result
      })
      this.core.applied(b.seq, results, b.seq % (this.options.checkpointInterval ?? 4) === 0 ? this.stateDigest() : undefined)
    }
    if (rd.fetchState !== undefined) {
      const donor = [...this.network.replicas.values()].find((r) => r !== this && r.snapshots.has(rd.fetchState!.seq))
      const snap = donor?.snapshots.get(rd.fetchState.seq)
      if (snap !== undefined) {
        this.applied = [...snap.applied]
        this.sessions = SessionTable.decode(snap.sessions, 64)
        this.fetches++
        this.core.stateInstalled(rd.fetchState.seq, rd.fetchState.stateDigest)
      }
    }
    const seq = this.core.status().lastExecuted
    if (seq % (this.options.checkpointInterval ?? 4) === 0) this.snapshots.set(seq, { applied: [...this.applied], sessions: this.sessions.encode() })
  }

  readonly snapshots = new Map<number, { applied: string[], sessions: Uint8Array }>()
}

export class TestNetwork {
  readonly ids: string[]
  readonly publicKeys = new Map<string, Uint8Array>()
  readonly replicas = new Map<string, TestReplica>()
  readonly #blocked = new Set<string>()
  readonly delivered: PbftMessage[] = []
  /** Replies delivered to clients, by client id. */
  readonly replies = new Map<string, PbftMessage[]>()
  /** Rewrites a message in flight (one per recipient), or drops it (undefined). */
  hook: ((m: PbftMessage, to: string) => PbftMessage | undefined) | undefined
  #queue: Array<{ to: string, bytes: Uint8Array }> = []

  constructor (n: number, options: Partial<PbftConfig> = {}) {
    this.ids = Array.from({ length: n }, (_, i) => `org${i + 1}`)
    for (const id of this.ids) this.publicKeys.set(id, identityFor(id).publicKey)
    for (const id of this.ids) this.replicas.set(id, new TestReplica(id, this, options))
  }

  replica (id: string): TestReplica {
    const r = this.replicas.get(id)
    if (r === undefined) throw new Error(`no replica ${id}`)
    return r
  }

  core (id: string): PbftCore { return this.replica(id).core }

  isolate (id: string): void {
    for (const other of this.ids) {
      if (other === id) continue
      this.#blocked.add(`${id}>${other}`)
      this.#blocked.add(`${other}>${id}`)
    }
  }

  recover (): void { this.#blocked.clear() }

  /** Sends raw bytes as if from `from` (forged or replayed traffic). */
  inject (to: string, message: PbftMessage): void {
    this.#queue.push({ to, bytes: encodePbftMessage(message) })
    this.stabilize()
  }

  tick (times = 1): void {
    for (let t = 0; t < times; t++) {
      for (const r of this.replicas.values()) r.core.tick()
      this.stabilize()
    }
  }

  stabilize (): void {
    for (let round = 0; round < 10_000; round++) {
      let moved = false
      for (const r of this.replicas.values()) {
        if (!r.core.hasReady()) continue
        moved = true
        const rd = r.core.ready()
        r.process(rd)
        for (const { to, message } of rd.messages) {
          if (this.#blocked.has(`${r.id}>${to}`)) continue
          const sent = this.hook === undefined ? message : this.hook(message, to)
          if (sent !== undefined) this.#queue.push({ to, bytes: encodePbftMessage(sent) })
        }
        r.core.advance(rd)
      }
      const queue = this.#queue
      this.#queue = []
      for (const { to, bytes } of queue) {
        moved = true
        const m = decodePbftMessage(bytes)
        this.delivered.push(m)
        const replica = this.replicas.get(to)
        if (replica !== undefined) replica.core.step(m)
        else this.replies.set(to, [...(this.replies.get(to) ?? []), m])
      }
      if (!moved) return
    }
    throw new Error('network did not stabilize')
  }

  /** Submits a client request at one replica and runs until quiet (ticks let the primary batch). */
  request (at: string, client: string, timestamp: number, op: string, options: { relay?: boolean } = {}): void {
    const result = this.core(at).propose(new TextEncoder().encode(op), { client, seq: timestamp }, options)
    if (!result.ok) throw new Error(`request refused: ${result.reason}`)
    this.stabilize()
  }

  /** The result a client accepts (f+1 matching signed replies), if any. */
  accepted (client: string, timestamp: number): Uint8Array | undefined {
    const collector = new ReplyCollector(client, timestamp, faultsTolerated(this.ids.length), this.publicKeys, verify)
    let result: Uint8Array | undefined
    for (const m of this.replies.get(client) ?? []) result ??= collector.add(m)
    return result
  }
}

export function requestOf (client: string, timestamp: number, op: string): ClientRequest {
  return { client, timestamp, op: new TextEncoder().encode(op) }
}

import { decode, encode } from 'cborg'
import {
  type ConfState, type Entry, type MessageType, type RaftConfig, RaftCore, type RaftMessage, type ReadState,
  RaftStorage, SessionTable, decodeRaftMessage, encodeRaftMessage
} from '../../../consensus/raft/index.js'
import { Prng } from '../../../simulations/world/prng.js'

// An in-process network of Raft cores for story-style tests (etcd's raft_test.go network): messages
// go through the wire codec; cut/isolate/ignore shape delivery; stabilize() runs to quiescence.

export class TestNode {
  core: RaftCore
  /** Applied normal entries' data (as strings), a tiny state machine; snapshots carry it whole. */
  applied: string[] = []
  readonly sessions = new SessionTable(8)
  readonly readStates: ReadState[] = []
  snapshotsInstalled = 0

  constructor (readonly id: string, conf: ConfState | 'joining', readonly options: Partial<RaftConfig>, seed: number) {
    this.core = new RaftCore({
      id,
      rng: new Prng(seed),
      storage: conf === 'joining' ? RaftStorage.joining() : RaftStorage.bootstrap(conf),
      takeSnapshot: () => encode(this.applied),
      ...options
    })
  }

  /** Crash and restart: volatile state is lost; the (synchronously persisted) log and hard state remain. */
  restart (): void {
    const { storage } = this.core
    this.core = new RaftCore({ id: this.id, rng: new Prng(99), storage, applied: this.core.status().applied, ...this.options })
  }

  /** Term of the entry applied at each index, for state-machine-safety checks. */
  readonly appliedTerms = new Map<number, number>()

  apply (e: Entry): void {
    this.appliedTerms.set(e.index, e.term)
    if (e.type !== 'normal' || e.data.length === 0) return
    this.sessions.applyOnce(e.requestId, () => {
      this.applied.push(new TextDecoder().decode(e.data))
      return new Uint8Array()
    })
  }
}

export class TestNetwork {
  readonly nodes = new Map<string, TestNode>()
  readonly #blocked = new Set<string>()
  readonly #ignored = new Set<MessageType>()
  readonly #dropPerMille = new Map<string, number>()
  readonly #prng = new Prng(42)
  readonly delivered: RaftMessage[] = []
  /** Rewrites or drops (undefined) a message in flight, like etcd's msgHook. */
  hook: ((m: RaftMessage) => RaftMessage | undefined) | undefined
  #queue: RaftMessage[] = []

  constructor (voters: string[], options: Partial<RaftConfig> = {}, learners: string[] = []) {
    const conf = { voters: [...voters].sort(), learners: [...learners].sort() }
    ;[...voters, ...learners].forEach((id, i) => this.nodes.set(id, new TestNode(id, conf, options, i + 1)))
  }

  /** A node joining later: it knows nobody and learns the configuration from the leader's log. */
  addNode (id: string, options: Partial<RaftConfig> = {}): TestNode {
    const node = new TestNode(id, 'joining', options, this.nodes.size + 1)
    this.nodes.set(id, node)
    return node
  }

  node (id: string): TestNode {
    const n = this.nodes.get(id)
    if (n === undefined) throw new Error(`no node ${id}`)
    return n
  }

  core (id: string): RaftCore { return this.node(id).core }

  cut (a: string, b: string): void {
    this.#blocked.add(`${a}>${b}`)
    this.#blocked.add(`${b}>${a}`)
  }

  isolate (id: string): void {
    for (const other of this.nodes.keys()) if (other !== id) this.cut(id, other)
  }

  ignore (type: MessageType): void { this.#ignored.add(type) }

  /** Drops messages from → to with probability perMille / 1000 (seeded). */
  drop (from: string, to: string, perMille: number): void { this.#dropPerMille.set(`${from}>${to}`, perMille) }

  recover (): void {
    this.#blocked.clear()
    this.#ignored.clear()
    this.#dropPerMille.clear()
  }

  leaders (): string[] {
    return [...this.nodes.values()].filter((n) => n.core.status().role === 'leader').map((n) => n.id)
  }

  tick (times = 1): void {
    for (let t = 0; t < times; t++) {
      for (const n of this.nodes.values()) n.core.tick()
      this.stabilize()
    }
  }

  /** Processes readies and delivers messages until nothing moves (bounded). */
  stabilize (): void {
    for (let round = 0; round < 10_000; round++) {
      let moved = false
      for (const n of this.nodes.values()) {
        if (!n.core.hasReady()) continue
        moved = true
        const rd = n.core.ready()
        if (rd.snapshot !== undefined) {
          n.applied = rd.snapshot.data.length === 0 ? [] : decode(rd.snapshot.data) as string[]
          n.snapshotsInstalled++
        }
        for (const m of rd.messages) this.#queue.push(decodeRaftMessage(encodeRaftMessage(m)))
        for (const e of rd.committedEntries) n.apply(e)
        n.readStates.push(...rd.readStates)
        n.core.advance(rd)
      }
      const queue = this.#queue
      this.#queue = []
      for (const m of queue) {
        const link = `${m.from}>${m.to}`
        if (this.#blocked.has(link) || this.#ignored.has(m.type)) continue
        if (this.#prng.chance(this.#dropPerMille.get(link) ?? 0, 1000)) continue
        const delivered = this.hook === undefined ? m : this.hook(m)
        if (delivered === undefined) continue
        moved = true
        this.delivered.push(delivered)
        this.nodes.get(m.to)?.core.step(delivered)
      }
      if (!moved) return
    }
    throw new Error('network did not stabilize')
  }

  /** State machine safety: indexes where two nodes applied entries of different terms. */
  appliedConflicts (): string[] {
    const seen = new Map<number, { id: string, term: number }>()
    const conflicts: string[] = []
    for (const n of this.nodes.values()) {
      for (const [index, term] of n.appliedTerms) {
        const first = seen.get(index)
        if (first === undefined) seen.set(index, { id: n.id, term })
        else if (first.term !== term) conflicts.push(`index ${index}: ${first.id} applied term ${first.term}, ${n.id} term ${term}`)
      }
    }
    return conflicts
  }

  /** Ticks until exactly one leader exists (bounded); returns it. */
  electLeader (ticksMax = 200): string {
    for (let t = 0; t < ticksMax; t++) {
      this.tick()
      const leaders = this.leaders()
      if (leaders.length === 1) return leaders[0]!
    }
    throw new Error('no leader elected')
  }

  propose (id: string, text: string, requestId?: { client: string, seq: number }): void {
    const result = this.core(id).propose(new TextEncoder().encode(text), requestId)
    if (!result.ok) throw new Error(`proposal refused: ${result.reason}`)
    this.stabilize()
  }
}

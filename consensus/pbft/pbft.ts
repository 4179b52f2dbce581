import assert from 'node:assert/strict'
import type { Signer } from '../../base/ed25519.js'
import { bytesEqual, toHex } from '../../base/bytes.js'
import { verify as ed25519Verify } from '../../base/ed25519.js'
import type { ConsensusCore, ProposeResult, RequestId } from '../types.js'
import {
  type Checkpoint, type ClientRequest, type Commit, type Committed, type NewView, type PbftMessage, type PrePrepare, type Prepare,
  type PreparedProof, type Reply, type Signed, type Status, type ViewChange, PBFT_BATCH_MAX, PBFT_ID_LENGTH_MAX, PBFT_MESSAGE_BYTES_MAX, PBFT_OP_BYTES_MAX, PBFT_REPLICAS_MAX, PBFT_WINDOW_MAX,
  batchDigest, sha256, sign, signingBytes
} from './messages.js'
import { PbftRequestError } from './errors.js'
import { type NewViewPlan, type Quorum, checkpointProofDigest, faultsTolerated, planNewView, primaryOf, quorumSize, validViewChange, validateNewView } from './view-change.js'

// A pure, deterministic PBFT replica (Castro & Liskov) in the shape of the Raft core: tick/step/
// propose in, Ready out, no I/O, no clock. One replica per organisation; n = 3f+1 or more replicas.
// The Ready contract adds one rule to Raft's: `promises` (every signed message that binds this
// replica: an accepted pre-prepare, the prepares behind a prepared certificate, our prepare, commit,
// view change, new view and checkpoint) are made durable BEFORE `messages` are sent, so a successor
// restored from them (config.restore) never contradicts what this replica already said.

export type VerifyFn = (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) => boolean

export interface PbftRestore {
  /** Every promise persisted so far (from the last stable checkpoint on), in Ready order. */
  promises: PbftMessage[]
  stable?: StableCheckpoint
  /** Sequence number the application state reflects (>= stable.seq). */
  executedSeq: number
}

export interface PbftConfig {
  id: string
  /** Replica ids in a fixed order shared by all: the primary of view v is replicas[v mod n]. */
  replicas: readonly string[]
  publicKeys: ReadonlyMap<string, Uint8Array>
  signer: Signer
  verify?: VerifyFn
  /** K: a checkpoint every K sequence numbers. */
  checkpointInterval?: number
  /** L: the high watermark is the stable checkpoint + L (a multiple of K). */
  logWindow?: number
  batchMax?: number
  /**
   * The primary orders a request at once when nothing it ordered is still unexecuted, instead of at
   * the next tick (lower latency when idle; under load batches still fill between ticks).
   */
  proposeWhenIdle?: boolean
  /** Bytes of requests in one batch; derived from the message size bound by default. */
  batchBytesMax?: number
  /** Ticks a replica waits for progress on a known request before voting for the next view. */
  requestTimeoutTicks?: number
  pendingRequestsMax?: number
  /** Clients whose last reply is cached (re-sent to a retrying client, never re-executed). */
  clientsMax?: number
  futureMessagesMax?: number
  restore?: PbftRestore
  /**
   * Test-only bugs, so tests can prove the simulator's checkers catch them. quorum2fPlus1: every
   * certificate takes 2f+1 replicas, the n = 3f+1 quorum, too few once n > 3f+1 (two such quorums
   * may share only a faulty replica). noRequestAgeBound: only the classic progress timer, so a primary
   * that keeps ordering others' requests can censor one forever.
   */
  unsafe?: { commitQuorumFPlus1?: boolean, trustNewViewO?: boolean, quorum2fPlus1?: boolean, noRequestAgeBound?: boolean }
}

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

export interface PbftStatus {
  id: string
  view: number
  /** False while waiting for the NewView of `view`. */
  active: boolean
  primary: string
  lowWatermark: number
  highWatermark: number
  lastExecuted: number
  pendingRequests: number
  viewChanges: number
  /** Batches committed from a peer's commit certificate (Committed) rather than our own quorum of commits. */
  caughtUp: number
  rejected: Readonly<Record<string, number>>
}

interface Slot {
  view: number
  prePrepare?: Signed<PrePrepare>
  prepares: Map<string, Signed<Prepare>>
  commits: Map<string, Signed<Commit>>
  ownPrepare?: Signed<Prepare>
  ownCommit?: Signed<Commit>
  prepared: boolean
  committed: boolean
  /** Replicas we resent our commit to. */
  helped: Set<string>
}

/** A commit certificate we hold for a seq: it proves the batch there in every view, so it outlives view changes. */
interface Certificate { prePrepare: Signed<PrePrepare>, commits: Array<Signed<Commit>>, signed?: Signed<Committed> }

interface Seen { view: number, seq: number, hash: string, message: PbftMessage, reported: boolean }

/** A request waiting here: since when, and how many batches a correct primary orders before (and with) it. */
interface PendingRequest { request: ClientRequest, sinceTick: number, batchesAhead: number, forwarded: boolean }

const BACKOFF_EXPONENT_MAX = 10
/** Wire bytes of a signed vote beyond its batch: sender id, signature, digest, numbers, framing. */
const SIGNED_MESSAGE_OVERHEAD_BYTES = PBFT_ID_LENGTH_MAX + 64 + 32 + 48
/** View changes further ahead than this are refused. */
const VIEW_CHANGE_AHEAD_MAX = 1024
/** Normal-case messages for views this far ahead wait for their NewView; further ones are dropped. */
const FUTURE_VIEWS_MAX = 8

export class PbftCore implements ConsensusCore<PbftMessage, PbftReady> {
  readonly id: string
  readonly replicas: readonly string[]
  readonly f: number
  readonly #quorum: Quorum
  readonly #publicKeys: ReadonlyMap<string, Uint8Array>
  readonly #signer: Signer
  readonly #verify: VerifyFn
  readonly #k: number
  readonly #l: number
  readonly #batchMax: number
  readonly #proposeWhenIdle: boolean
  readonly #batchBytesMax: number
  readonly #timeoutTicks: number
  readonly #pendingMax: number
  readonly #clientsMax: number
  readonly #futureMax: number
  readonly #unsafe: NonNullable<PbftConfig['unsafe']>

  #view = 0
  #active = true
  #elapsed = 0
  #ticks = 0
  #backoff = 0
  #low = 0
  #stable: StableCheckpoint
  #lastExecuted = 0
  #lastApplied = 0
  #lastAssigned = 0
  #highestPrePrepared = 0
  #fetching: { seq: number, stateDigest: Uint8Array } | undefined
  #fetchAnnounced = false
  #currentNewView: Signed<NewView> | undefined
  readonly #slots = new Map<number, Slot>()
  readonly #preparedProofs = new Map<number, PreparedProof>()
  readonly #committed = new Map<number, CommittedBatch>()
  /** Commit certificates in (low, low + L], kept across view changes until the stable checkpoint passes them. */
  readonly #certificates = new Map<number, Certificate>()
  /** Per replica, when we last answered its Status (bounded by n): a faulty one cannot make us resend the window at will. */
  readonly #statusAnswered = new Map<string, number>()
  #caughtUp = 0
  /** Executed, handed out in a Ready, not yet applied(): the requests to answer. */
  readonly #executedBatches = new Map<number, CommittedBatch>()
  readonly #checkpoints = new Map<number, Map<string, Signed<Checkpoint>>>()
  /** Per replica, its highest checkpoint beyond 4 windows above our low watermark. */
  readonly #farCheckpoints = new Map<string, Signed<Checkpoint>>()
  readonly #ownCheckpoints = new Map<number, Signed<Checkpoint>>()
  /** The latest (highest-view) valid view change from each replica, ours included. */
  readonly #viewChanges = new Map<string, Signed<ViewChange>>()
  /** By client, in arrival order (a replacement moves to the back): the order a correct primary proposes in. */
  readonly #pending = new Map<string, PendingRequest>()
  #pendingBytes = 0
  /** When the current view was installed: a new primary's time to order starts there. */
  #viewSinceTick = 0
  readonly #assigned = new Set<string>()
  readonly #replies = new Map<string, Signed<Reply>>()
  #future: PbftMessage[] = []
  readonly #seen = new Map<string, Seen>()
  readonly #verified = new Map<string, string>()
  /** Per replica, the latest view we saw it work in (bounded by n). */
  readonly #laterViews = new Map<string, number>()
  /** Per replica, the last stable checkpoint or view we helped it to (bounded by n). */
  readonly #helped = new Map<string, string>()

  #promises: PbftMessage[] = []
  #messages: Outbound[] = []
  #committedOut: CommittedBatch[] = []
  #evidence: Evidence[] = []
  #stableOut: StableCheckpoint | undefined
  #readyOutstanding = false
  #viewChangeCount = 0
  readonly #rejected: Record<string, number> = {}

  constructor (config: PbftConfig) {
    const n = config.replicas.length
    // Below 4 no Byzantine fault is tolerated (f = 0) but crashes still are (q = 2 of 3): a federation
    // that revoked members down to 3 keeps running.
    assert.ok(n >= 3 && n <= PBFT_REPLICAS_MAX, `PBFT needs 3..${PBFT_REPLICAS_MAX} replicas`)
    assert.equal(new Set(config.replicas).size, n, 'replica ids must be distinct')
    assert.ok(config.replicas.includes(config.id), 'this replica is not in the replica set')
    for (const r of config.replicas) assert.equal(config.publicKeys.get(r)?.length, 32, `no ed25519 key for replica ${r}`)
    this.id = config.id
    this.replicas = [...config.replicas]
    this.f = faultsTolerated(n)
    this.#publicKeys = config.publicKeys
    this.#signer = config.signer
    assert.ok(bytesEqual(this.#signer.publicKey, this.#publicKeys.get(this.id)!), 'signer key is not this replica\'s key')
    this.#verify = config.verify ?? ed25519Verify
    this.#k = config.checkpointInterval ?? 16
    this.#l = config.logWindow ?? 2 * this.#k
    assert.ok(this.#k >= 1 && this.#l % this.#k === 0 && this.#l >= 2 * this.#k && this.#l <= PBFT_WINDOW_MAX, 'log window must be a multiple (>= 2) of the checkpoint interval')
    this.#batchMax = Math.min(config.batchMax ?? 64, PBFT_BATCH_MAX)
    this.#proposeWhenIdle = config.proposeWhenIdle ?? false
    this.#unsafe = config.unsafe ?? {}
    const size = this.#unsafe.quorum2fPlus1 === true ? 2 * this.f + 1 : quorumSize(n)
    this.#quorum = { replicas: this.replicas, f: this.f, size, logWindow: this.#l, checkpointInterval: this.#k, verify: (m) => this.#verifySigned(m) }
    // The largest message is a NewView: up to n view changes with up to L prepared certificates
    // each (a batch and a quorum of signed messages), plus O. It must fit the wire bound, or a view
    // change could never be sent: the batch size is derived from that unless configured (then checked).
    const batchBytesFit = viewChangeBatchBytes(n, size, this.#l)
    this.#batchBytesMax = Math.min(config.batchBytesMax ?? Math.min(16 * 1024, batchBytesFit), PBFT_OP_BYTES_MAX)
    assert.ok(this.#batchBytesMax >= 1024 && this.#batchBytesMax <= batchBytesFit, `a view change would exceed ${PBFT_MESSAGE_BYTES_MAX} bytes: lower the log window or the batch size`)
    this.#timeoutTicks = config.requestTimeoutTicks ?? 20
    assert.ok(this.#timeoutTicks >= 2, 'request timeout must be at least 2 ticks')
    this.#pendingMax = config.pendingRequestsMax ?? 4096
    this.#clientsMax = config.clientsMax ?? 10_000
    this.#futureMax = config.futureMessagesMax ?? 16 * n * this.#l
    this.#stable = { seq: 0, stateDigest: new Uint8Array(32), proof: [] }
    if (config.restore !== undefined) this.#restore(config.restore)
  }

  // ---- inputs ----

  tick (): void {
    this.#elapsed++
    // A checkpoint heartbeat: a replica cut off while a checkpoint became stable learns it this way.
    if (++this.#ticks % this.#timeoutTicks === 0) this.#resendCheckpoints()
    if (this.#fetching !== undefined && this.#elapsed % this.#timeoutTicks === 0) this.#fetchAnnounced = false
    if (!this.#active) {
      const timeout = this.#timeoutTicks * 2 ** Math.min(this.#backoff, BACKOFF_EXPONENT_MAX)
      // No NewView in time: try the next view, or the latest any replica asked for, so replicas that
      // drifted apart (one of them alone far ahead) meet again instead of chasing each other.
      if (this.#elapsed >= timeout) this.#startViewChange(Math.max(this.#view + 1, ...[...this.#viewChanges.values()].map((vc) => vc.body.view)))
      else if (this.#elapsed % this.#timeoutTicks === 0) this.#resendViewChange()
      // Alone in a view change, we may still learn (and execute) what the others commit meanwhile.
      else if (this.#elapsed % this.#timeoutTicks === this.#timeoutTicks >> 1 && this.#waiting()) this.#broadcastStatus()
      return
    }
    this.#proposeBatches()
    const waiting = this.#waiting()
    // No progress on known work: suspect the primary (a primary stuck behind its backups suspects
    // itself, as only a new view can bring it the certificates it missed).
    if (!waiting) this.#elapsed = 0
    else if (this.#elapsed >= this.#timeoutTicks || this.#watchOldestRequest()) this.#startViewChange(this.#view + 1)
    else if (this.#elapsed === this.#timeoutTicks >> 1) this.#retransmit()
  }

  /** Work is open here: known requests, or pre-prepared slots not executed yet. */
  #waiting (): boolean {
    return this.#pending.size > 0 || this.#highestPrePrepared > this.#lastExecuted
  }

  step (m: PbftMessage): void {
    if (m.from === this.id) return
    if (!this.#publicKeys.has(m.from) || !this.replicas.includes(m.from)) return this.#reject('unknown-sender')
    if (m.body.type === 'Reply') return this.#reject('unexpected-reply')
    if (!this.#verifySigned(m)) return this.#reject('bad-signature')
    this.#watchEquivocation(m)
    this.#dispatch(m)
  }

  /**
   * A client request (requestId = client and its request timestamp), sent on to every replica.
   * Throws PbftRequestError for a request that could never fit a batch or a bad client id.
   */
  propose (op: Uint8Array, requestId: RequestId): ProposeResult {
    const r = { client: requestId.client, timestamp: requestId.seq, op }
    if (requestBytes(r) > this.#batchBytesMax) throw new PbftRequestError('pbft-request-too-large', `request of ${requestBytes(r)} bytes, a batch holds ${this.#batchBytesMax}`)
    if (r.client.length === 0 || r.client.length > PBFT_ID_LENGTH_MAX || !Number.isSafeInteger(r.timestamp) || r.timestamp < 0) {
      throw new PbftRequestError('pbft-request-malformed', 'client id must be a bounded non-empty string and the timestamp a non-negative integer')
    }
    return this.#receiveRequest(r, true) ? { ok: true } : { ok: false, reason: 'queue-full' }
  }

  /**
   * The application applied committed batch `seq` (in order): results[i] answers requests[i]
   * (undefined for a request too old to answer). At a checkpoint (seq % K = 0) pass the digest of the
   * application state as of seq.
   */
  applied (seq: number, results: Array<Uint8Array | undefined>, stateDigest?: Uint8Array): void {
    assert.equal(seq, this.#lastApplied + 1, 'batches must be applied in order')
    assert.ok(seq <= this.#lastExecuted, 'applied a batch that was not committed')
    this.#lastApplied = seq
    const batch = this.#executedBatches.get(seq)
    this.#executedBatches.delete(seq)
    assert.ok(batch !== undefined && results.length === batch.requests.length, 'one result per request')
    batch.requests.forEach((r, i) => {
      const result = results[i]
      if (result === undefined) return
      const reply = sign(this.#signer, this.id, { type: 'Reply', view: this.#view, client: r.client, timestamp: r.timestamp, result })
      this.#replies.delete(r.client)
      this.#replies.set(r.client, reply)
      if (this.#replies.size > this.#clientsMax) this.#replies.delete(this.#replies.keys().next().value!)
      this.#messages.push({ to: r.client, message: reply })
    })
    if (seq % this.#k !== 0) return
    assert.ok(stateDigest !== undefined && stateDigest.length === 32, 'a checkpoint needs a 32-byte state digest')
    const cp = sign(this.#signer, this.id, { type: 'Checkpoint', seq, stateDigest })
    this.#ownCheckpoints.set(seq, cp)
    this.#promises.push(cp)
    this.#broadcast(cp)
    this.#addCheckpoint(cp)
  }

  /**
   * The shell fetched the state of the stable checkpoint in the latest fetchState. False (and
   * nothing changes) if a later checkpoint became stable meanwhile: fetch that one instead.
   */
  stateInstalled (seq: number, stateDigest: Uint8Array): boolean {
    if (this.#fetching === undefined || this.#fetching.seq !== seq || !bytesEqual(this.#fetching.stateDigest, stateDigest)) return false
    this.#fetching = undefined
    // What we waited for may have executed in the range we skipped; every replica that still
    // waits for a request holds it too (requests go to all), so nothing is lost by forgetting.
    this.#pending.clear()
    this.#pendingBytes = 0
    this.#assigned.clear()
    this.#lastExecuted = seq
    this.#lastApplied = seq
    for (const s of [...this.#executedBatches.keys()]) if (s <= seq) this.#executedBatches.delete(s)
    this.#elapsed = 0
    this.#execute()
    return true
  }

  // ---- outputs ----

  hasReady (): boolean {
    return this.#promises.length > 0 || this.#messages.length > 0 || this.#committedOut.length > 0 || this.#evidence.length > 0 ||
      this.#stableOut !== undefined || (this.#fetching !== undefined && !this.#fetchAnnounced)
  }

  ready (): PbftReady {
    assert.ok(!this.#readyOutstanding, 'ready() called again before advance()')
    this.#readyOutstanding = true
    const rd: PbftReady = { promises: this.#promises, messages: this.#messages, committed: this.#committedOut, evidence: this.#evidence }
    if (this.#stableOut !== undefined) rd.stable = this.#stableOut
    if (this.#fetching !== undefined && !this.#fetchAnnounced) {
      rd.fetchState = this.#fetching
      this.#fetchAnnounced = true
    }
    this.#promises = []
    this.#messages = []
    this.#committedOut = []
    this.#evidence = []
    this.#stableOut = undefined
    return rd
  }

  advance (_rd: PbftReady): void {
    assert.ok(this.#readyOutstanding, 'advance() without ready()')
    this.#readyOutstanding = false
  }

  status (): PbftStatus {
    return {
      id: this.id,
      view: this.#view,
      active: this.#active,
      primary: primaryOf(this.replicas, this.#view),
      lowWatermark: this.#low,
      highWatermark: this.#low + this.#l,
      lastExecuted: this.#lastExecuted,
      pendingRequests: this.#pending.size,
      viewChanges: this.#viewChangeCount,
      caughtUp: this.#caughtUp,
      rejected: { ...this.#rejected }
    }
  }

  // ---- requests and the normal case ----

  #receiveRequest (r: ClientRequest, fromClient: boolean): boolean {
    if (requestBytes(r) > this.#batchBytesMax) {
      this.#reject('request-too-large')
      return false
    }
    const last = this.#replies.get(r.client)
    if (last !== undefined && r.timestamp <= last.body.timestamp) {
      // Already executed: answer a retry from the cache, never order it again.
      if (fromClient && r.timestamp === last.body.timestamp) this.#messages.push({ to: r.client, message: last })
      return true
    }
    // Executed but not yet applied by the shell (its reply is on the way): ordering it again would
    // apply it twice. Bounded by the window.
    for (const b of this.#executedBatches.values()) if (b.requests.some((e) => e.client === r.client && e.timestamp >= r.timestamp)) return true
    const known = this.#pending.get(r.client)?.request
    if (known !== undefined && known.timestamp > r.timestamp) return true
    if (known === undefined || known.timestamp < r.timestamp) {
      if (known === undefined && this.#pending.size >= this.#pendingMax) return false
      // A newer request from a client replaces its older one and waits from now, at the back of the
      // queue: a client cannot hold a place ahead of others (nor age a request) by replacing it.
      this.#addPending(r)
      // A new request from our own client goes to every replica: all of them then watch the primary order it.
      if (fromClient) this.#broadcast(sign(this.#signer, this.id, { type: 'Request', request: r }))
    } else if (fromClient && !this.#isPrimary() && this.#active) {
      // The client retries: the primary may have missed it.
      this.#forward(known)
    }
    if (this.#unassigned().length >= this.#batchMax || (this.#proposeWhenIdle && this.#lastAssigned === this.#lastExecuted)) this.#proposeBatches()
    return true
  }

  /**
   * The progress timer restarts on every execution, so alone it never suspects a primary that orders
   * everyone's requests but one. The oldest request here must be ordered within the time a correct
   * primary needs for the backlog it arrived behind (see #batchesAhead): past half of it, forward it
   * to the primary (which may have missed it); past all of it, true: suspect the primary. Only the oldest
   * is watched (O(1) a tick): a request censored behind it is caught once it is the oldest, at most
   * one bound (of a backlog of at most pendingRequestsMax) later.
   */
  #watchOldestRequest (): boolean {
    const oldest = this.#pending.values().next().value
    if (oldest === undefined || this.#unsafe.noRequestAgeBound === true) return false
    const waitedTicks = this.#ticks - Math.max(oldest.sinceTick, this.#viewSinceTick)
    // Once the network is timely, a correct primary gets a window of batches through the three
    // phases within a timeout (the progress timer's own assumption) and slides the window with one
    // more checkpoint exchange: half a window of batches per timeout, conservatively. One timeout
    // more covers the request reaching the primary late (forwarded) and a new view's re-proposals.
    const boundTicks = this.#timeoutTicks * (Math.ceil(oldest.batchesAhead / Math.max(1, Math.floor(this.#l / 2))) + 1)
    if (waitedTicks >= boundTicks >> 1 && !oldest.forwarded && !this.#isPrimary()) {
      oldest.forwarded = true
      this.#forward(oldest.request)
    }
    return waitedTicks > boundTicks
  }

  /**
   * Batches a correct primary proposes before the one holding a request that arrives now, that one
   * included. It proposes in arrival order, filling each batch greedily: a batch is full by count
   * (batchMax of the requests ahead), or the request after it did not fit its bytes, so such a batch
   * and that next request (counted at most twice over all batches) hold more than batchBytesMax.
   */
  #batchesAhead (r: ClientRequest): number {
    return Math.floor(this.#pending.size / this.#batchMax) + Math.floor((2 * this.#pendingBytes + requestBytes(r)) / this.#batchBytesMax) + 1
  }

  #addPending (r: ClientRequest): void {
    this.#removePending(r.client)
    this.#pending.set(r.client, { request: r, sinceTick: this.#ticks, batchesAhead: this.#batchesAhead(r), forwarded: false })
    this.#pendingBytes += requestBytes(r)
  }

  #removePending (client: string): void {
    const p = this.#pending.get(client)
    if (p === undefined) return
    this.#pending.delete(client)
    this.#pendingBytes -= requestBytes(p.request)
    assert.ok(this.#pendingBytes >= 0 && (this.#pending.size > 0 || this.#pendingBytes === 0), 'pending bytes track the pending requests')
  }

  #forward (r: ClientRequest): void {
    this.#messages.push({ to: primaryOf(this.replicas, this.#view), message: sign(this.#signer, this.id, { type: 'Request', request: r }) })
  }

  #unassigned (): ClientRequest[] {
    return [...this.#pending.values()].map((p) => p.request).filter((r) => !this.#assigned.has(requestKey(r)))
  }

  #proposeBatches (): void {
    if (!this.#active || !this.#isPrimary()) return
    let queue = this.#unassigned()
    while (queue.length > 0 && this.#lastAssigned < this.#low + this.#l && this.#fetching === undefined) {
      const batch: ClientRequest[] = []
      let bytes = 0
      while (batch.length < this.#batchMax && queue.length > 0 && bytes + requestBytes(queue[0]!) <= this.#batchBytesMax) {
        const r = queue.shift()!
        bytes += requestBytes(r)
        batch.push(r)
        this.#assigned.add(requestKey(r))
      }
      const seq = ++this.#lastAssigned
      const pp = sign(this.#signer, this.id, { type: 'PrePrepare', view: this.#view, seq, digest: batchDigest(batch), batch })
      this.#promises.push(pp)
      this.#broadcast(pp)
      this.#acceptPrePrepare(pp)
      queue = queue.filter((r) => !this.#assigned.has(requestKey(r)))
    }
  }

  #dispatch (m: PbftMessage): void {
    const b = m.body
    switch (b.type) {
      case 'Request':
        this.#receiveRequest(b.request, false)
        return
      case 'PrePrepare': case 'Prepare': case 'Commit':
        if (this.#normalCaseReady(m as Signed<PrePrepare | Prepare | Commit>)) this.#stepNormal(m as Signed<PrePrepare | Prepare | Commit>)
        return
      case 'Checkpoint':
        this.#stepCheckpoint(m as Signed<Checkpoint>)
        return
      case 'ViewChange':
        this.#stepViewChange(m as Signed<ViewChange>)
        return
      case 'NewView':
        this.#stepNewView(m as Signed<NewView>)
        return
      case 'Status':
        this.#stepStatus(m as Signed<Status>)
        return
      case 'Committed':
        this.#stepCommitted(m as Signed<Committed>)
        return
      case 'Reply':
        return
    }
  }

  /** True if the message belongs to this view and window; buffers messages of a view not yet installed. */
  #normalCaseReady (m: Signed<PrePrepare | Prepare | Commit>): boolean {
    const { view, seq } = m.body
    if (view > this.#view || (view === this.#view && !this.#active)) {
      if (view > this.#view + FUTURE_VIEWS_MAX) this.#reject('view-too-far-ahead')
      else this.#defer(m)
      this.#noticeLaterView(m.from, view)
      return false
    }
    if (view < this.#view) return false
    if (seq <= this.#low) {
      this.#helpPastCheckpoint(m.from)
      return false
    }
    if (seq > this.#low + this.#l) {
      // Just above the high watermark: the checkpoint that moves it is probably on its way.
      if (seq <= this.#low + 2 * this.#l) this.#defer(m)
      else this.#reject('outside-watermarks')
      return false
    }
    return true
  }

  /**
   * f+1 replicas work in later views (so a correct one does): ask to join the latest view f+1 of
   * them reached. Our ViewChange for it makes a replica already there send us its NewView.
   */
  #noticeLaterView (from: string, view: number): void {
    if ((this.#laterViews.get(from) ?? -1) >= view) return
    this.#laterViews.set(from, view)
    const views = [...this.#laterViews.values()].filter((v) => v > this.#view).sort((a, b) => b - a)
    const target = views[this.f]
    if (target !== undefined) this.#startViewChange(target)
  }

  /** Keeps a message for a view or window not reached yet (bounded, oldest dropped first). */
  #defer (m: PbftMessage): void {
    if (this.#future.length >= this.#futureMax) this.#future.shift()
    this.#future.push(m)
  }

  #replayDeferred (): void {
    const deferred = this.#future
    this.#future = []
    for (const m of deferred) if ('view' in m.body && m.body.view >= this.#view) this.#dispatch(m)
  }

  #stepNormal (m: Signed<PrePrepare | Prepare | Commit>): void {
    const b = m.body
    if (b.type === 'PrePrepare') {
      if (m.from !== primaryOf(this.replicas, b.view)) return this.#reject('pre-prepare-not-from-primary')
      if (!this.#validBatch(b)) return this.#reject('bad-batch')
      const slot = this.#slot(b.seq)
      if (slot.prePrepare !== undefined) return
      this.#promises.push(m)
      this.#acceptPrePrepare(m as Signed<PrePrepare>)
      return
    }
    const slot = this.#slot(b.seq)
    if (b.type === 'Prepare') {
      if (m.from === primaryOf(this.replicas, b.view)) return this.#reject('prepare-from-primary')
      if (!slot.prepares.has(m.from)) slot.prepares.set(m.from, m as Signed<Prepare>)
    } else if (!slot.commits.has(m.from)) {
      slot.commits.set(m.from, m as Signed<Commit>)
    }
    if (b.type === 'Prepare' && b.seq <= this.#lastExecuted) this.#helpLaggingReplica(m.from, slot)
    this.#advanceSlot(b.seq, slot)
  }

  #validBatch (pp: PrePrepare): boolean {
    if (pp.batch.length > this.#batchMax || !bytesEqual(pp.digest, batchDigest(pp.batch))) return false
    const clients = new Set<string>()
    let bytes = 0
    for (const r of pp.batch) {
      if (clients.has(r.client)) return false
      clients.add(r.client)
      bytes += requestBytes(r)
    }
    return bytes <= this.#batchBytesMax
  }

  /** A pre-prepare for the current view (ours, a primary's, or from a NewView's O). */
  #acceptPrePrepare (pp: Signed<PrePrepare>): void {
    const slot = this.#slot(pp.body.seq)
    assert.ok(slot.prePrepare === undefined || bytesEqual(slot.prePrepare.body.digest, pp.body.digest), 'two pre-prepares accepted for one seq and view')
    slot.prePrepare = pp
    this.#highestPrePrepared = Math.max(this.#highestPrePrepared, pp.body.seq)
    if (pp.from !== this.id && slot.ownPrepare === undefined) {
      const prepare = sign(this.#signer, this.id, { type: 'Prepare', view: pp.body.view, seq: pp.body.seq, digest: pp.body.digest })
      slot.ownPrepare = prepare
      slot.prepares.set(this.id, prepare)
      this.#promises.push(prepare)
      this.#broadcast(prepare)
    }
    this.#advanceSlot(pp.body.seq, slot)
  }

  #advanceSlot (seq: number, slot: Slot): void {
    const pp = slot.prePrepare
    if (pp === undefined) return
    if (!slot.prepared) {
      const matching = [...slot.prepares.values()].filter((p) => bytesEqual(p.body.digest, pp.body.digest))
      if (matching.length < this.#quorum.size - 1) return
      slot.prepared = true
      // The prepared certificate is a promise: a view change must carry it even after a restart.
      const prepares = matching.slice(0, this.#quorum.size - 1)
      this.#promises.push(...prepares.filter((p) => p.from !== this.id))
      const known = this.#preparedProofs.get(seq)
      if (known === undefined || known.prePrepare.body.view <= pp.body.view) this.#preparedProofs.set(seq, { prePrepare: pp, prepares })
      const commit = sign(this.#signer, this.id, { type: 'Commit', view: pp.body.view, seq, digest: pp.body.digest })
      slot.ownCommit = commit
      slot.commits.set(this.id, commit)
      this.#promises.push(commit)
      this.#broadcast(commit)
    }
    if (slot.committed) return
    const commits = [...slot.commits.values()].filter((c) => bytesEqual(c.body.digest, pp.body.digest)).length
    if (commits < (this.#unsafe.commitQuorumFPlus1 === true ? this.f + 1 : this.#quorum.size)) return
    slot.committed = true
    const known = this.#certificates.get(seq)
    // A quorum committed another batch here (maybe in another view, maybe we executed it from its certificate): safety is lost.
    assert.ok(known === undefined || bytesEqual(known.prePrepare.body.digest, pp.body.digest), `two batches committed at seq ${seq}`)
    this.#keepCertificate(pp, [...slot.commits.values()])
    if (seq > this.#lastExecuted) this.#committed.set(seq, { seq, view: pp.body.view, digest: pp.body.digest, requests: pp.body.batch })
    this.#execute()
  }

  #execute (): void {
    if (this.#fetching !== undefined) return
    for (let c = this.#committed.get(this.#lastExecuted + 1); c !== undefined; c = this.#committed.get(this.#lastExecuted + 1)) {
      this.#committed.delete(c.seq)
      this.#lastExecuted = c.seq
      this.#elapsed = 0
      for (const r of c.requests) {
        this.#assigned.delete(requestKey(r))
        const p = this.#pending.get(r.client)?.request
        if (p !== undefined && p.timestamp <= r.timestamp) {
          this.#removePending(r.client)
          this.#assigned.delete(requestKey(p))
        }
      }
      this.#executedBatches.set(c.seq, c)
      this.#committedOut.push(c)
    }
  }

  #slot (seq: number): Slot {
    let slot = this.#slots.get(seq)
    if (slot === undefined || slot.view < this.#view) {
      slot = { view: this.#view, prepares: new Map(), commits: new Map(), prepared: false, committed: false, helped: new Set() }
      this.#slots.set(seq, slot)
    }
    return slot
  }

  /** Half way to the timeout: resend what we said for the work still open (identical signed bytes), and ask what we missed. */
  #retransmit (): void {
    this.#broadcastStatus()
    if (!this.#isPrimary()) for (const p of this.#pending.values()) this.#forward(p.request)
    for (const [seq, slot] of this.#slots) {
      if (seq <= this.#lastExecuted || slot.view !== this.#view) continue
      if (slot.prePrepare?.from === this.id) this.#broadcast(slot.prePrepare)
      if (slot.ownPrepare !== undefined) this.#broadcast(slot.ownPrepare)
      if (slot.ownCommit !== undefined) this.#broadcast(slot.ownCommit)
    }
    this.#resendCheckpoints()
  }

  #resendCheckpoints (): void {
    for (const [seq, cp] of this.#ownCheckpoints) if (seq >= this.#low) this.#broadcast(cp)
  }

  /** A replica still preparing a seq we executed in this view: it may have missed our commit. */
  #helpLaggingReplica (to: string, slot: Slot): void {
    if (slot.ownCommit === undefined || slot.helped.has(to)) return
    slot.helped.add(to)
    this.#messages.push({ to, message: slot.ownCommit })
  }

  /** A replica still working below our stable checkpoint: hand it the checkpoint proof. */
  #helpPastCheckpoint (to: string): void {
    const key = `s:${this.#low}`
    if (this.#low === 0 || this.#helped.get(to) === key) return
    this.#helped.set(to, key)
    this.#sendStableProof(to)
  }

  #sendStableProof (to: string): void {
    for (const cp of this.#stable.proof) this.#messages.push({ to, message: cp })
  }

  // ---- catching up from commit certificates ----

  #broadcastStatus (): void {
    this.#broadcast(sign(this.#signer, this.id, { type: 'Status', view: this.#view, lastExecuted: this.#lastExecuted }))
  }

  /** Keeps a commit certificate for seq if the commits hold a full quorum matching the pre-prepare. */
  #keepCertificate (pp: Signed<PrePrepare>, commits: Array<Signed<Commit>>): void {
    const { view, seq, digest } = pp.body
    if (this.#certificates.has(seq) || seq <= this.#low || seq > this.#low + this.#l) return
    const matching = commits.filter((c) => c.body.view === view && c.body.seq === seq && bytesEqual(c.body.digest, digest))
    if (new Set(matching.map((c) => c.from)).size !== matching.length || matching.length < this.#quorum.size) return
    this.#certificates.set(seq, { prePrepare: pp, commits: matching.slice(0, this.#quorum.size) })
  }

  /**
   * A replica waits for work: send it the certificates of what we executed beyond what it did, or the
   * stable checkpoint proof if it is behind our garbage collection. At most one answer a quarter
   * timeout to a replica (a correct one asks every half timeout, give or take network jitter), so a
   * faulty one cannot amplify: at most 4 windows of cached certificates a timeout.
   */
  #stepStatus (m: Signed<Status>): void {
    const { lastExecuted } = m.body
    if (lastExecuted >= this.#lastExecuted) return
    const last = this.#statusAnswered.get(m.from)
    if (last !== undefined && this.#ticks - last < Math.max(1, this.#timeoutTicks >> 2)) return this.#reject('status-rate-limited')
    this.#statusAnswered.set(m.from, this.#ticks)
    // Behind our garbage collection: it fetches the state (rate-limited here, so never deduplicated).
    if (lastExecuted < this.#low) this.#sendStableProof(m.from)
    const top = Math.min(this.#lastExecuted, this.#low + this.#l)
    for (let seq = Math.max(lastExecuted, this.#low) + 1; seq <= top; seq++) {
      const c = this.#certificates.get(seq)
      if (c === undefined) continue
      c.signed ??= sign(this.#signer, this.id, { type: 'Committed', prePrepare: c.prePrepare, commits: c.commits })
      this.#messages.push({ to: m.from, message: c.signed })
    }
  }

  /**
   * A commit certificate proves its batch is committed at its seq in every view, so executing it is
   * safe whatever our view and whether or not we are active; it casts no vote and moves no view.
   */
  #stepCommitted (m: Signed<Committed>): void {
    const pp = m.body.prePrepare
    const { seq } = pp.body
    if (seq <= this.#lastExecuted || this.#committed.has(seq) || seq <= this.#low) return
    if (seq > this.#low + this.#l) return this.#reject('outside-watermarks')
    if (!this.#validCertificate(m.body)) return this.#reject('invalid-certificate')
    this.#watchEquivocation(pp)
    for (const c of m.body.commits) this.#watchEquivocation(c)
    this.#keepCertificate(pp, m.body.commits)
    this.#committed.set(seq, { seq, view: pp.body.view, digest: pp.body.digest, requests: pp.body.batch })
    this.#caughtUp++
    this.#execute()
  }

  #validCertificate (c: Committed): boolean {
    const pp = c.prePrepare
    const { view, seq, digest } = pp.body
    if (pp.from !== primaryOf(this.replicas, view) || !this.#validBatch(pp.body) || !this.#verifySigned(pp)) return false
    const signers = new Set<string>()
    for (const commit of c.commits) {
      const b = commit.body
      if (b.view !== view || b.seq !== seq || !bytesEqual(b.digest, digest) || signers.has(commit.from) || !this.#verifySigned(commit)) return false
      signers.add(commit.from)
    }
    return signers.size >= this.#quorum.size
  }

  // ---- checkpoints ----

  #stepCheckpoint (m: Signed<Checkpoint>): void {
    const { seq } = m.body
    if (seq % this.#k !== 0) return this.#reject('outside-watermarks')
    if (seq <= this.#low) {
      if (seq < this.#low) this.#helpPastCheckpoint(m.from)
      return
    }
    if (seq > this.#low + 4 * this.#l) return this.#addFarCheckpoint(m)
    this.#addCheckpoint(m)
  }

  /**
   * A checkpoint far beyond our window: we fell far behind (a new host restored an old promise log).
   * Only each replica's highest one is kept (bounded by n); a quorum of them proves a stable
   * checkpoint we then fetch the state of.
   */
  #addFarCheckpoint (m: Signed<Checkpoint>): void {
    const known = this.#farCheckpoints.get(m.from)
    if (known !== undefined && known.body.seq >= m.body.seq) return
    this.#farCheckpoints.set(m.from, m)
    const matching = [...this.#farCheckpoints.values()].filter((c) => c.body.seq === m.body.seq && bytesEqual(c.body.stateDigest, m.body.stateDigest))
    if (matching.length >= this.#quorum.size) this.#adoptStable({ seq: m.body.seq, stateDigest: m.body.stateDigest, proof: matching })
  }

  #addCheckpoint (m: Signed<Checkpoint>): void {
    const { seq } = m.body
    let bySender = this.#checkpoints.get(seq)
    if (bySender === undefined) {
      bySender = new Map()
      this.#checkpoints.set(seq, bySender)
    }
    if (!bySender.has(m.from)) bySender.set(m.from, m)
    const matching = [...bySender.values()].filter((c) => bytesEqual(c.body.stateDigest, m.body.stateDigest))
    if (matching.length >= this.#quorum.size) this.#adoptStable({ seq, stateDigest: m.body.stateDigest, proof: matching })
  }

  /** A checkpoint proven by a quorum: move the low watermark and collect garbage below it. */
  #adoptStable (stable: StableCheckpoint): void {
    if (stable.seq <= this.#low) return
    const own = this.#ownCheckpoints.get(stable.seq)
    assert.ok(own === undefined || bytesEqual(own.body.stateDigest, stable.stateDigest), 'our state diverged from a quorum at a checkpoint')
    this.#low = stable.seq
    this.#stable = stable
    this.#stableOut = stable
    if (this.#lastExecuted < stable.seq) {
      // Lagging behind the others' garbage collection: the shell fetches the state instead.
      this.#fetching = { seq: stable.seq, stateDigest: stable.stateDigest }
      this.#fetchAnnounced = false
    }
    this.#lastAssigned = Math.max(this.#lastAssigned, stable.seq)
    for (const map of [this.#slots, this.#preparedProofs, this.#committed, this.#certificates]) for (const seq of [...map.keys()]) if (seq <= stable.seq) map.delete(seq)
    for (const seq of [...this.#checkpoints.keys()]) if (seq < stable.seq) this.#checkpoints.delete(seq)
    for (const [r, c] of this.#farCheckpoints) if (c.body.seq <= stable.seq) this.#farCheckpoints.delete(r)
    for (const seq of [...this.#ownCheckpoints.keys()]) if (seq < stable.seq) this.#ownCheckpoints.delete(seq)
    for (const [key, s] of this.#seen) if (s.seq !== 0 && s.seq <= stable.seq) this.#seen.delete(key)
    if (this.#active) this.#replayDeferred()
  }

  // ---- view change ----

  #startViewChange (view: number): void {
    assert.ok(view > this.#view || (view === this.#view && this.#active), 'view changes only move forward')
    this.#backoff = this.#active ? 0 : this.#backoff + 1
    this.#view = view
    this.#active = false
    this.#elapsed = 0
    this.#viewChangeCount++
    this.#currentNewView = undefined
    const prepared = [...this.#preparedProofs.values()].filter((p) => p.prePrepare.body.seq > this.#low).sort((a, b) => a.prePrepare.body.seq - b.prePrepare.body.seq)
    const vc = sign(this.#signer, this.id, { type: 'ViewChange', view, stableSeq: this.#low, checkpointProof: this.#stable.proof, prepared })
    this.#viewChanges.set(this.id, vc)
    this.#promises.push(vc)
    this.#broadcast(vc)
    this.#maybeSendNewView()
  }

  #resendViewChange (): void {
    const own = this.#viewChanges.get(this.id)
    if (own !== undefined && own.body.view === this.#view) this.#broadcast(own)
  }

  #stepViewChange (m: Signed<ViewChange>): void {
    const { view } = m.body
    if (view < this.#view || (view === this.#view && this.#active)) {
      // A replica behind us: our NewView (signed by its primary) brings it into the current view.
      if (this.#active && this.#currentNewView !== undefined && this.#helped.get(m.from) !== `v:${this.#view}`) {
        this.#helped.set(m.from, `v:${this.#view}`)
        this.#messages.push({ to: m.from, message: this.#currentNewView })
      }
      return
    }
    // A faulty replica could otherwise drag everyone towards the largest safe integer.
    if (view > this.#view + VIEW_CHANGE_AHEAD_MAX) return this.#reject('view-too-far-ahead')
    const known = this.#viewChanges.get(m.from)
    if (known !== undefined && known.body.view >= view) return
    if (!validViewChange(this.#quorum, m.body)) return this.#reject('invalid-view-change')
    this.#viewChanges.set(m.from, m)
    this.#watchCertificates(m.body)
    // f+1 replicas want a later view: at least one is correct, so join the smallest of those views.
    const ahead = [...this.#viewChanges.values()].filter((vc) => vc.from !== this.id && vc.body.view > this.#view)
    if (ahead.length >= this.f + 1) this.#startViewChange(Math.min(...ahead.map((vc) => vc.body.view)))
    else this.#maybeSendNewView()
  }

  #maybeSendNewView (): void {
    if (this.#active || !this.#isPrimary()) return
    const vcs = this.replicas.flatMap((r) => {
      const vc = this.#viewChanges.get(r)
      return vc !== undefined && vc.body.view === this.#view ? [vc] : []
    })
    if (vcs.length < this.#quorum.size) return
    const plan = planNewView(this.#view, vcs.map((vc) => vc.body))
    const prePrepares = plan.prePrepares.map((pp) => sign(this.#signer, this.id, pp))
    const nv = sign(this.#signer, this.id, { type: 'NewView', view: this.#view, viewChanges: vcs, prePrepares })
    this.#promises.push(nv)
    this.#broadcast(nv)
    this.#installNewView(nv, plan)
  }

  #stepNewView (m: Signed<NewView>): void {
    const { view } = m.body
    if (view < this.#view || (view === this.#view && this.#active)) return
    const verdict = validateNewView(this.#quorum, m, this.#unsafe.trustNewViewO === true)
    if (!verdict.ok) return this.#reject('invalid-new-view')
    for (const vc of m.body.viewChanges) this.#watchCertificates(vc.body)
    this.#promises.push(m)
    this.#installNewView(m, verdict.plan)
  }

  #installNewView (nv: Signed<NewView>, plan: NewViewPlan): void {
    this.#view = nv.body.view
    this.#active = true
    this.#backoff = 0
    this.#elapsed = 0
    this.#viewSinceTick = this.#ticks
    this.#currentNewView = nv
    this.#assigned.clear()
    this.#slots.clear()
    if (plan.stableSeq > this.#low) this.#adoptStable({ seq: plan.stableSeq, stateDigest: plan.stableDigest, proof: plan.stableProof })
    this.#lastAssigned = Math.max(this.#low, ...nv.body.prePrepares.map((pp) => pp.body.seq))
    this.#highestPrePrepared = this.#low
    for (const pp of nv.body.prePrepares) {
      if (pp.body.seq <= this.#low) continue
      for (const r of pp.body.batch) this.#assigned.add(requestKey(r))
      this.#acceptPrePrepare(pp)
    }
    if (!this.#isPrimary()) for (const p of this.#pending.values()) this.#forward(p.request)
    this.#replayDeferred()
  }

  // ---- authentication and equivocation ----

  #verifySigned (m: Signed): boolean {
    const key = this.#publicKeys.get(m.from)
    if (key === undefined || !this.replicas.includes(m.from)) return false
    const id = toHex(m.signature)
    const bytes = signingBytes(m.from, m.body)
    const hash = toHex(sha256(bytes))
    if (this.#verified.get(id) === hash) return true
    if (!this.#verify(key, bytes, m.signature)) return false
    if (this.#verified.size >= 16 * this.#l * this.replicas.length) this.#verified.clear()
    this.#verified.set(id, hash)
    return true
  }

  /** Certificates carry other replicas' signed votes: an equivocating primary shows up here. */
  #watchCertificates (vc: ViewChange): void {
    for (const p of vc.prepared) {
      this.#watchEquivocation(p.prePrepare)
      for (const pr of p.prepares) this.#watchEquivocation(pr)
    }
  }

  #watchEquivocation (m: PbftMessage): void {
    const b = m.body
    // A Status changes as we progress and a Committed is a relay: only the votes inside are watched.
    if (b.type === 'Request' || b.type === 'Reply' || b.type === 'Status' || b.type === 'Committed') return
    const view = 'view' in b ? b.view : 0
    const seq = 'seq' in b ? b.seq : 0
    const key = `${b.type}|${m.from}|${view}|${seq}`
    const hash = this.#verified.get(toHex(m.signature))
    if (hash === undefined) return
    const seen = this.#seen.get(key)
    if (seen === undefined) {
      if (this.#seen.size < 8 * this.replicas.length * this.#l) this.#seen.set(key, { view, seq, hash, message: m, reported: false })
      return
    }
    if (seen.hash === hash || seen.reported) return
    seen.reported = true
    this.#evidence.push({ replica: m.from, first: seen.message, second: m })
  }

  // ---- restart ----

  #restore (r: PbftRestore): void {
    if (r.stable !== undefined) {
      assert.ok(checkpointProofDigest(this.#quorum, r.stable.seq, r.stable.proof) !== undefined, 'restored stable checkpoint without a valid proof')
      this.#low = r.stable.seq
      this.#stable = r.stable
    }
    this.#lastExecuted = this.#lastApplied = r.executedSeq
    this.#lastAssigned = Math.max(r.executedSeq, this.#low)
    // Crashed while fetching a checkpoint's state: fetch it again.
    if (r.executedSeq < this.#low) this.#fetching = { seq: this.#low, stateDigest: this.#stable.stateDigest }
    for (const m of r.promises) {
      const b = m.body
      if (b.type === 'ViewChange' && b.view >= this.#view) {
        this.#view = b.view
        this.#active = false
        this.#viewChanges.set(this.id, m as Signed<ViewChange>)
      } else if (b.type === 'NewView' && b.view >= this.#view) {
        this.#view = b.view
        this.#active = true
        this.#currentNewView = m as Signed<NewView>
        this.#slots.clear()
        for (const pp of b.prePrepares) if (pp.body.seq > this.#low) this.#restoreVote(pp)
      } else if (b.type === 'Checkpoint' && m.from === this.id && b.seq >= this.#low) {
        this.#ownCheckpoints.set(b.seq, m as Signed<Checkpoint>)
      } else if ((b.type === 'PrePrepare' || b.type === 'Prepare' || b.type === 'Commit') && b.seq > this.#low && b.view === this.#view) {
        this.#restoreVote(m as Signed<PrePrepare | Prepare | Commit>)
      }
    }
    this.#promises = []
    this.#messages = []
    this.#committedOut = []
    // Probably behind the others (the old leader may have lagged): ask what was committed meanwhile.
    this.#broadcastStatus()
  }

  /** Replays one persisted vote of the current view into its slot, resending nothing. */
  #restoreVote (m: Signed<PrePrepare | Prepare | Commit>): void {
    const b = m.body
    const slot = this.#slot(b.seq)
    if (b.type === 'PrePrepare') {
      slot.prePrepare = m as Signed<PrePrepare>
      this.#highestPrePrepared = Math.max(this.#highestPrePrepared, b.seq)
      if (m.from === this.id) this.#lastAssigned = Math.max(this.#lastAssigned, b.seq)
      for (const r of b.batch) this.#assigned.add(requestKey(r))
      return
    }
    if (b.type === 'Prepare') {
      slot.prepares.set(m.from, m as Signed<Prepare>)
      if (m.from === this.id) slot.ownPrepare = m as Signed<Prepare>
      const pp = slot.prePrepare
      const matching = [...slot.prepares.values()].filter((p) => pp !== undefined && bytesEqual(p.body.digest, pp.body.digest))
      if (pp !== undefined && !slot.prepared && matching.length >= this.#quorum.size - 1) {
        slot.prepared = true
        this.#preparedProofs.set(b.seq, { prePrepare: pp, prepares: matching.slice(0, this.#quorum.size - 1) })
      }
      return
    }
    slot.commits.set(m.from, m as Signed<Commit>)
    slot.ownCommit = m as Signed<Commit>
  }

  // ---- helpers ----

  #isPrimary (): boolean {
    return primaryOf(this.replicas, this.#view) === this.id
  }

  #broadcast (m: PbftMessage): void {
    for (const r of this.replicas) if (r !== this.id) this.#messages.push({ to: r, message: m })
  }

  #reject (reason: string): void {
    this.#rejected[reason] = (this.#rejected[reason] ?? 0) + 1
  }
}

/** The batch bytes that keep a NewView within the wire bound, for n replicas, quorum q and log window L. */
function viewChangeBatchBytes (n: number, q: number, logWindow: number): number {
  return Math.floor(PBFT_MESSAGE_BYTES_MAX / ((n + 1) * logWindow)) - SIGNED_MESSAGE_OVERHEAD_BYTES * (q + 1)
}

/** Whether n replicas can run with checkpoint interval K (and the default log window 2K): a view change must fit the wire. */
export function checkpointIntervalFits (n: number, checkpointInterval: number): boolean {
  return viewChangeBatchBytes(n, quorumSize(n), 2 * checkpointInterval) >= 1024
}

/** A request's share of a batch on the wire (op, client id, timestamp and framing). */
function requestBytes (r: ClientRequest): number {
  return r.op.length + r.client.length + 16
}

function requestKey (r: ClientRequest): string {
  return `${r.client}\u0000${r.timestamp}`
}

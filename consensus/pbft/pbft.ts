import assert from 'node:assert/strict'
import type { Signer } from '../../base/ed25519.js'
import { bytesEqual } from '../../base/bytes.js'
import type { ConsensusCore, ProposeResult, RequestId } from '../types.js'
import {
  type Checkpoint, type ClientRequest, type Commit, type Committed, type NewView, type PbftBody, type PbftMessage, type PrePrepare, type Prepare,
  type Signed, type Status, type ViewChange, PBFT_ID_LENGTH_MAX, batchDigest, sign
} from './messages.js'
import { PbftRequestError } from './errors.js'
import { type NewViewPlan, type Quorum, planNewView, primaryOf, validViewChange, validateNewView } from './view-change.js'
import { Authenticator } from './authentication.js'
import { CheckpointTracker } from './checkpoints.js'
import { CommitCertificates } from './commit-certificates.js'
import { type PbftConfig, type PbftRestore, pbftSettings } from './config.js'
import { Execution } from './execution.js'
import { MessageLog, type Slot } from './message-log.js'
import { Outbox, type PbftReady, type StableCheckpoint } from './outbox.js'
import { ReplyCache, RequestQueue, requestBytes } from './requests.js'
import { ViewState } from './view-state.js'

// A pure, deterministic PBFT replica (Castro & Liskov) in the shape of the Raft core: tick/step/
// propose in, Ready out, no I/O, no clock. One replica per organisation; n = 3f+1 or more replicas.
// The Ready contract adds one rule to Raft's: `promises` (every signed message that binds this
// replica: an accepted pre-prepare, the prepares behind a prepared certificate, our prepare, commit,
// view change, new view and checkpoint) are made durable BEFORE `messages` are sent, so a successor
// restored from them (config.restore) never contradicts what this replica already said.
//
// The core runs the protocol's steps; the state they share lives in the parts it composes: the
// request queue, the message log (slots and prepared certificates), commit certificates (catch-up),
// checkpoints (the low watermark), the view, execution (and state transfer), the authenticator
// (signatures and equivocation) and the outbox (the next Ready); config.ts checks the settings.

export type { VerifyFn } from './authentication.js'
export { type PbftConfig, type PbftRestore, checkpointIntervalFits } from './config.js'
export type { CommittedBatch, Evidence, Outbound, PbftReady, StableCheckpoint } from './outbox.js'

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

/** View changes further ahead than this are refused. */
const VIEW_CHANGE_AHEAD_MAX = 1024
/** Normal-case messages for views this far ahead wait for their NewView; further ones are dropped. */
const FUTURE_VIEWS_MAX = 8

export class PbftCore implements ConsensusCore<PbftMessage, PbftReady> {
  readonly id: string
  readonly replicas: readonly string[]
  readonly f: number
  readonly #quorum: Quorum
  readonly #signer: Signer
  readonly #k: number
  readonly #l: number
  readonly #proposeWhenIdle: boolean
  readonly #timeoutTicks: number
  readonly #futureMax: number
  readonly #unsafe: NonNullable<PbftConfig['unsafe']>

  readonly #outbox: Outbox
  readonly #auth: Authenticator
  readonly #requests: RequestQueue
  readonly #replies: ReplyCache
  readonly #log = new MessageLog()
  readonly #certificates: CommitCertificates
  readonly #checkpoints: CheckpointTracker
  readonly #views: ViewState
  readonly #execution = new Execution()

  #elapsed = 0
  #ticks = 0
  #lastAssigned = 0
  #highestPrePrepared = 0
  #caughtUp = 0
  #future: PbftMessage[] = []
  /** Per replica, the last stable checkpoint or view we helped it to (bounded by n). */
  readonly #helped = new Map<string, string>()
  #readyOutstanding = false
  readonly #rejected: Record<string, number> = {}

  constructor (config: PbftConfig) {
    const s = pbftSettings(config)
    this.id = config.id
    this.replicas = [...config.replicas]
    this.f = s.f
    this.#signer = config.signer
    this.#k = s.checkpointInterval
    this.#l = s.logWindow
    this.#proposeWhenIdle = s.proposeWhenIdle
    this.#timeoutTicks = s.requestTimeoutTicks
    this.#futureMax = s.futureMessagesMax
    this.#unsafe = s.unsafe
    this.#outbox = new Outbox(this.id, this.replicas)
    this.#auth = new Authenticator({ replicas: this.replicas, publicKeys: config.publicKeys, verify: s.verify, logWindow: this.#l, report: (e) => this.#outbox.evidence(e) })
    this.#quorum = { replicas: this.replicas, f: this.f, size: s.quorumSize, logWindow: this.#l, checkpointInterval: this.#k, verify: (m) => this.#auth.verify(m) }
    this.#requests = new RequestQueue({ batchMax: s.batchMax, batchBytesMax: s.batchBytesMax, pendingMax: s.pendingRequestsMax })
    this.#replies = new ReplyCache(s.clientsMax)
    this.#certificates = new CommitCertificates({ quorum: this.#quorum, sign: (body) => this.#sign(body), validBatch: (pp) => this.#requests.validBatch(pp) })
    this.#checkpoints = new CheckpointTracker(this.#quorum)
    this.#views = new ViewState(this.id, this.replicas, this.f)
    if (config.restore !== undefined) this.#restore(config.restore)
  }

  // ---- inputs ----

  tick (): void {
    this.#elapsed++
    // A checkpoint heartbeat: a replica cut off while a checkpoint became stable learns it this way.
    if (++this.#ticks % this.#timeoutTicks === 0) this.#resendCheckpoints()
    if (this.#elapsed % this.#timeoutTicks === 0) this.#execution.refetch()
    if (!this.#views.active) {
      if (this.#elapsed >= this.#views.timeoutTicks(this.#timeoutTicks)) this.#startViewChange(this.#views.nextView())
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
    else if (this.#elapsed >= this.#timeoutTicks || this.#watchOldestRequest()) this.#startViewChange(this.#views.view + 1)
    else if (this.#elapsed === this.#timeoutTicks >> 1) this.#retransmit()
  }

  /** Work is open here: known requests, or pre-prepared slots not executed yet. */
  #waiting (): boolean {
    return this.#requests.size > 0 || this.#highestPrePrepared > this.#execution.lastExecuted
  }

  step (m: PbftMessage): void {
    if (m.from === this.id) return
    if (!this.#auth.isReplica(m.from)) return this.#reject('unknown-sender')
    if (m.body.type === 'Reply') return this.#reject('unexpected-reply')
    if (!this.#auth.verify(m)) return this.#reject('bad-signature')
    this.#auth.watch(m)
    this.#dispatch(m)
  }

  /**
   * A client request (requestId = client and its request timestamp), sent on to every replica.
   * Throws PbftRequestError for a request that could never fit a batch or a bad client id.
   */
  /**
   * A client request. relay: send it on to every replica (signed), so that all of them watch the
   * primary order it — false when the client's own broadcast reaches every replica anyway (the
   * federation gossips each request to every node), which saves n−1 messages per replica.
   */
  propose (op: Uint8Array, requestId: RequestId, options: { relay?: boolean } = {}): ProposeResult {
    const r = { client: requestId.client, timestamp: requestId.seq, op }
    if (!this.#requests.fits(r)) throw new PbftRequestError('pbft-request-too-large', `request of ${requestBytes(r)} bytes, a batch holds ${this.#requests.batchBytesMax}`)
    if (r.client.length === 0 || r.client.length > PBFT_ID_LENGTH_MAX || !Number.isSafeInteger(r.timestamp) || r.timestamp < 0) {
      throw new PbftRequestError('pbft-request-malformed', 'client id must be a bounded non-empty string and the timestamp a non-negative integer')
    }
    return this.#receiveRequest(r, true, options.relay ?? true) ? { ok: true } : { ok: false, reason: 'queue-full' }
  }

  /**
   * The application applied committed batch `seq` (in order): results[i] answers requests[i]
   * (undefined for a request too old to answer). At a checkpoint (seq % K = 0) pass the digest of the
   * application state as of seq.
   */
  applied (seq: number, results: Array<Uint8Array | undefined>, stateDigest?: Uint8Array): void {
    const batch = this.#execution.applied(seq, results.length)
    batch.requests.forEach((r, i) => {
      const result = results[i]
      if (result === undefined) return
      const reply = this.#sign({ type: 'Reply', view: this.#views.view, client: r.client, timestamp: r.timestamp, result })
      this.#replies.remember(reply)
      this.#outbox.send(r.client, reply)
    })
    if (seq % this.#k !== 0) return
    assert.ok(stateDigest !== undefined && stateDigest.length === 32, 'a checkpoint needs a 32-byte state digest')
    const cp = this.#sign({ type: 'Checkpoint', seq, stateDigest })
    this.#checkpoints.keepOwn(cp)
    this.#outbox.promise(cp)
    this.#outbox.broadcast(cp)
    this.#adoptIfStable(this.#checkpoints.add(cp))
  }

  /**
   * The shell fetched the state of the stable checkpoint in the latest fetchState. False (and
   * nothing changes) if a later checkpoint became stable meanwhile: fetch that one instead.
   */
  stateInstalled (seq: number, stateDigest: Uint8Array): boolean {
    if (!this.#execution.installed(seq, stateDigest)) return false
    // What we waited for may have executed in the range we skipped; every replica that still
    // waits for a request holds it too (requests go to all), so nothing is lost by forgetting.
    this.#requests.clear()
    this.#elapsed = 0
    this.#execute()
    return true
  }

  // ---- outputs ----

  hasReady (): boolean {
    return !this.#outbox.isEmpty() || this.#execution.hasFetchToAnnounce()
  }

  ready (): PbftReady {
    assert.ok(!this.#readyOutstanding, 'ready() called again before advance()')
    this.#readyOutstanding = true
    const rd = this.#outbox.take()
    const fetch = this.#execution.announceFetch()
    if (fetch !== undefined) rd.fetchState = fetch
    return rd
  }

  advance (_rd: PbftReady): void {
    assert.ok(this.#readyOutstanding, 'advance() without ready()')
    this.#readyOutstanding = false
  }

  status (): PbftStatus {
    return {
      id: this.id,
      view: this.#views.view,
      active: this.#views.active,
      primary: this.#views.primary(),
      lowWatermark: this.#low,
      highWatermark: this.#low + this.#l,
      lastExecuted: this.#execution.lastExecuted,
      pendingRequests: this.#requests.size,
      viewChanges: this.#views.changes,
      caughtUp: this.#caughtUp,
      rejected: { ...this.#rejected }
    }
  }

  // ---- requests and the normal case ----

  #receiveRequest (r: ClientRequest, fromClient: boolean, relay = false): boolean {
    if (!this.#requests.fits(r)) {
      this.#reject('request-too-large')
      return false
    }
    const last = this.#replies.last(r.client)
    if (last !== undefined && r.timestamp <= last.body.timestamp) {
      // Already executed: answer a retry from the cache, never order it again.
      if (fromClient && r.timestamp === last.body.timestamp) this.#outbox.send(r.client, last)
      return true
    }
    if (this.#execution.awaitsApply(r)) return true
    const known = this.#requests.get(r.client)?.request
    if (known !== undefined && known.timestamp > r.timestamp) return true
    if (known === undefined || known.timestamp < r.timestamp) {
      if (known === undefined && this.#requests.isFull()) return false
      this.#requests.add(r, this.#ticks)
      // A new request from a client goes to every replica (unless the client's own broadcast does): all of them then watch the primary order it.
      if (relay) this.#outbox.broadcast(this.#sign({ type: 'Request', request: r }))
    } else if (fromClient && !this.#views.isPrimary() && this.#views.active) {
      // The client retries: the primary may have missed it.
      this.#forward(known)
    }
    if (this.#requests.unassigned().length >= this.#requests.batchMax || (this.#proposeWhenIdle && this.#lastAssigned === this.#execution.lastExecuted)) this.#proposeBatches()
    return true
  }

  /**
   * The progress timer restarts on every execution, so alone it never suspects a primary that orders
   * everyone's requests but one. The oldest request here must be ordered within the time a correct
   * primary needs for the backlog it arrived behind (PendingRequest.batchesAhead): past half of it,
   * forward it to the primary (which may have missed it); past all of it, true: suspect the primary.
   * Only the oldest is watched (O(1) a tick): a request censored behind it is caught once it is the
   * oldest, at most one bound (of a backlog of at most pendingRequestsMax) later.
   */
  #watchOldestRequest (): boolean {
    const oldest = this.#requests.oldest()
    if (oldest === undefined || this.#unsafe.noRequestAgeBound === true) return false
    const waitedTicks = this.#ticks - Math.max(oldest.sinceTick, this.#views.sinceTick)
    // Once the network is timely, a correct primary gets a window of batches through the three
    // phases within a timeout (the progress timer's own assumption) and slides the window with one
    // more checkpoint exchange: half a window of batches per timeout, conservatively. One timeout
    // more covers the request reaching the primary late (forwarded) and a new view's re-proposals.
    const boundTicks = this.#timeoutTicks * (Math.ceil(oldest.batchesAhead / Math.max(1, Math.floor(this.#l / 2))) + 1)
    if (waitedTicks >= boundTicks >> 1 && !oldest.forwarded && !this.#views.isPrimary()) {
      oldest.forwarded = true
      this.#forward(oldest.request)
    }
    return waitedTicks > boundTicks
  }

  #forward (r: ClientRequest): void {
    this.#outbox.send(this.#views.primary(), this.#sign({ type: 'Request', request: r }))
  }

  #proposeBatches (): void {
    if (!this.#views.active || !this.#views.isPrimary()) return
    let queue = this.#requests.unassigned()
    while (queue.length > 0 && this.#lastAssigned < this.#low + this.#l && this.#execution.fetching === undefined) {
      const batch = this.#requests.takeBatch(queue)
      const seq = ++this.#lastAssigned
      const pp = this.#sign({ type: 'PrePrepare', view: this.#views.view, seq, digest: batchDigest(batch), batch })
      this.#outbox.promise(pp)
      this.#outbox.broadcast(pp)
      this.#acceptPrePrepare(pp)
      queue = queue.filter((r) => !this.#requests.isAssigned(r))
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
    if (!this.#views.reached(view)) {
      if (view > this.#views.view + FUTURE_VIEWS_MAX) this.#reject('view-too-far-ahead')
      else this.#defer(m)
      const target = this.#views.laterView(m.from, view)
      // Our ViewChange for it makes a replica already there send us its NewView.
      if (target !== undefined) this.#startViewChange(target)
      return false
    }
    if (view < this.#views.view) return false
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

  /** Keeps a message for a view or window not reached yet (bounded, oldest dropped first). */
  #defer (m: PbftMessage): void {
    if (this.#future.length >= this.#futureMax) this.#future.shift()
    this.#future.push(m)
  }

  #replayDeferred (): void {
    const deferred = this.#future
    this.#future = []
    for (const m of deferred) if ('view' in m.body && m.body.view >= this.#views.view) this.#dispatch(m)
  }

  #stepNormal (m: Signed<PrePrepare | Prepare | Commit>): void {
    const b = m.body
    if (b.type === 'PrePrepare') {
      if (m.from !== primaryOf(this.replicas, b.view)) return this.#reject('pre-prepare-not-from-primary')
      if (!this.#requests.validBatch(b)) return this.#reject('bad-batch')
      const slot = this.#slot(b.seq)
      if (slot.prePrepare !== undefined) return
      this.#outbox.promise(m)
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
    if (b.type === 'Prepare' && b.seq <= this.#execution.lastExecuted) this.#helpLaggingReplica(m.from, slot)
    this.#advanceSlot(b.seq, slot)
  }

  /** A pre-prepare for the current view (ours, a primary's, or from a NewView's O). */
  #acceptPrePrepare (pp: Signed<PrePrepare>): void {
    const slot = this.#slot(pp.body.seq)
    assert.ok(slot.prePrepare === undefined || bytesEqual(slot.prePrepare.body.digest, pp.body.digest), 'two pre-prepares accepted for one seq and view')
    slot.prePrepare = pp
    this.#highestPrePrepared = Math.max(this.#highestPrePrepared, pp.body.seq)
    if (pp.from !== this.id && slot.ownPrepare === undefined) {
      const prepare = this.#sign({ type: 'Prepare', view: pp.body.view, seq: pp.body.seq, digest: pp.body.digest })
      slot.ownPrepare = prepare
      slot.prepares.set(this.id, prepare)
      this.#outbox.promise(prepare)
      this.#outbox.broadcast(prepare)
    }
    this.#advanceSlot(pp.body.seq, slot)
  }

  #advanceSlot (seq: number, slot: Slot): void {
    const pp = slot.prePrepare
    if (pp === undefined) return
    if (!slot.prepared) {
      const prepares = this.#log.prepare(seq, slot, this.#quorum.size - 1)
      if (prepares === undefined) return
      // The prepared certificate is a promise: a view change must carry it even after a restart.
      this.#outbox.promise(...prepares.filter((p) => p.from !== this.id))
      const commit = this.#sign({ type: 'Commit', view: pp.body.view, seq, digest: pp.body.digest })
      slot.ownCommit = commit
      slot.commits.set(this.id, commit)
      this.#outbox.promise(commit)
      this.#outbox.broadcast(commit)
    }
    if (slot.committed) return
    const commits = [...slot.commits.values()].filter((c) => bytesEqual(c.body.digest, pp.body.digest)).length
    if (commits < (this.#unsafe.commitQuorumFPlus1 === true ? this.f + 1 : this.#quorum.size)) return
    slot.committed = true
    const known = this.#certificates.prePrepareAt(seq)
    // A quorum committed another batch here (maybe in another view, maybe we executed it from its certificate): safety is lost.
    assert.ok(known === undefined || bytesEqual(known.body.digest, pp.body.digest), `two batches committed at seq ${seq}`)
    this.#certificates.keep(pp, [...slot.commits.values()], this.#low)
    this.#execution.commit({ seq, view: pp.body.view, digest: pp.body.digest, requests: pp.body.batch })
    this.#execute()
  }

  #execute (): void {
    for (let c = this.#execution.next(); c !== undefined; c = this.#execution.next()) {
      this.#elapsed = 0
      this.#requests.executed(c.requests)
      this.#outbox.executed(c)
    }
  }

  #slot (seq: number): Slot {
    return this.#log.slot(seq, this.#views.view)
  }

  /** Half way to the timeout: resend what we said for the work still open (identical signed bytes), and ask what we missed. */
  #retransmit (): void {
    this.#broadcastStatus()
    if (!this.#views.isPrimary()) for (const p of this.#requests.waiting()) this.#forward(p.request)
    for (const [seq, slot] of this.#log.slots()) {
      if (seq <= this.#execution.lastExecuted || slot.view !== this.#views.view) continue
      if (slot.prePrepare?.from === this.id) this.#outbox.broadcast(slot.prePrepare)
      if (slot.ownPrepare !== undefined) this.#outbox.broadcast(slot.ownPrepare)
      if (slot.ownCommit !== undefined) this.#outbox.broadcast(slot.ownCommit)
    }
    this.#resendCheckpoints()
  }

  #resendCheckpoints (): void {
    for (const cp of this.#checkpoints.ownToResend()) this.#outbox.broadcast(cp)
  }

  /** A replica still preparing a seq we executed in this view: it may have missed our commit. */
  #helpLaggingReplica (to: string, slot: Slot): void {
    if (slot.ownCommit === undefined || slot.helped.has(to)) return
    slot.helped.add(to)
    this.#outbox.send(to, slot.ownCommit)
  }

  /** A replica still working below our stable checkpoint: hand it the checkpoint proof. */
  #helpPastCheckpoint (to: string): void {
    const key = `s:${this.#low}`
    if (this.#low === 0 || this.#helped.get(to) === key) return
    this.#helped.set(to, key)
    this.#sendStableProof(to)
  }

  #sendStableProof (to: string): void {
    for (const cp of this.#checkpoints.stable.proof) this.#outbox.send(to, cp)
  }

  // ---- catching up from commit certificates ----

  #broadcastStatus (): void {
    this.#outbox.broadcast(this.#sign({ type: 'Status', view: this.#views.view, lastExecuted: this.#execution.lastExecuted }))
  }

  /**
   * A replica waits for work: send it the certificates of what we executed beyond what it did, or the
   * stable checkpoint proof if it is behind our garbage collection. At most one answer a quarter
   * timeout to a replica, so a faulty one cannot amplify: at most 4 windows of cached certificates a timeout.
   */
  #stepStatus (m: Signed<Status>): void {
    const { lastExecuted } = m.body
    if (lastExecuted >= this.#execution.lastExecuted) return
    if (!this.#certificates.mayAnswer(m.from, this.#ticks, Math.max(1, this.#timeoutTicks >> 2))) return this.#reject('status-rate-limited')
    // Behind our garbage collection: it fetches the state (rate-limited here, so never deduplicated).
    if (lastExecuted < this.#low) this.#sendStableProof(m.from)
    const top = Math.min(this.#execution.lastExecuted, this.#low + this.#l)
    for (const c of this.#certificates.signedIn(Math.max(lastExecuted, this.#low) + 1, top)) this.#outbox.send(m.from, c)
  }

  /**
   * A commit certificate proves its batch is committed at its seq in every view, so executing it is
   * safe whatever our view and whether or not we are active; it casts no vote and moves no view.
   */
  #stepCommitted (m: Signed<Committed>): void {
    const pp = m.body.prePrepare
    const { seq } = pp.body
    if (seq <= this.#execution.lastExecuted || this.#execution.isCommitted(seq) || seq <= this.#low) return
    if (seq > this.#low + this.#l) return this.#reject('outside-watermarks')
    if (!this.#certificates.valid(m.body)) return this.#reject('invalid-certificate')
    this.#auth.watch(pp)
    for (const c of m.body.commits) this.#auth.watch(c)
    this.#certificates.keep(pp, m.body.commits, this.#low)
    this.#execution.commit({ seq, view: pp.body.view, digest: pp.body.digest, requests: pp.body.batch })
    this.#caughtUp++
    this.#execute()
  }

  // ---- checkpoints ----

  get #low (): number {
    return this.#checkpoints.low
  }

  #stepCheckpoint (m: Signed<Checkpoint>): void {
    const { seq } = m.body
    if (seq % this.#k !== 0) return this.#reject('outside-watermarks')
    if (seq <= this.#low) {
      if (seq < this.#low) this.#helpPastCheckpoint(m.from)
      return
    }
    // Far beyond our window, we fell far behind (a new host restored an old promise log).
    this.#adoptIfStable(seq > this.#low + 4 * this.#l ? this.#checkpoints.addFar(m) : this.#checkpoints.add(m))
  }

  #adoptIfStable (stable: StableCheckpoint | undefined): void {
    if (stable !== undefined) this.#adoptStable(stable)
  }

  /** A checkpoint proven by a quorum: move the low watermark and collect garbage below it. */
  #adoptStable (stable: StableCheckpoint): void {
    if (!this.#checkpoints.adopt(stable)) return
    this.#outbox.stable(stable)
    this.#execution.fetchIfBehind(stable)
    this.#lastAssigned = Math.max(this.#lastAssigned, stable.seq)
    this.#log.collectThrough(stable.seq)
    this.#execution.collectThrough(stable.seq)
    this.#certificates.collectThrough(stable.seq)
    this.#auth.forgetThrough(stable.seq)
    if (this.#views.active) this.#replayDeferred()
  }

  // ---- view change ----

  #startViewChange (view: number): void {
    this.#views.begin(view)
    this.#elapsed = 0
    const vc = this.#sign({ type: 'ViewChange', view, stableSeq: this.#low, checkpointProof: this.#checkpoints.stable.proof, prepared: this.#log.preparedAbove(this.#low) })
    this.#views.record(vc)
    this.#outbox.promise(vc)
    this.#outbox.broadcast(vc)
    this.#maybeSendNewView()
  }

  #resendViewChange (): void {
    const own = this.#views.own()
    if (own !== undefined && own.body.view === this.#views.view) this.#outbox.broadcast(own)
  }

  #stepViewChange (m: Signed<ViewChange>): void {
    const { view } = m.body
    if (this.#views.reached(view)) {
      // A replica behind us: our NewView (signed by its primary) brings it into the current view.
      const nv = this.#views.newView
      const key = `v:${this.#views.view}`
      if (this.#views.active && nv !== undefined && this.#helped.get(m.from) !== key) {
        this.#helped.set(m.from, key)
        this.#outbox.send(m.from, nv)
      }
      return
    }
    // A faulty replica could otherwise drag everyone towards the largest safe integer.
    if (view > this.#views.view + VIEW_CHANGE_AHEAD_MAX) return this.#reject('view-too-far-ahead')
    if (!this.#views.isNewer(m)) return
    if (!validViewChange(this.#quorum, m.body)) return this.#reject('invalid-view-change')
    this.#views.record(m)
    this.#auth.watchCertificates(m.body)
    const target = this.#views.joinable()
    if (target !== undefined) this.#startViewChange(target)
    else this.#maybeSendNewView()
  }

  #maybeSendNewView (): void {
    if (this.#views.active || !this.#views.isPrimary()) return
    const vcs = this.#views.votesForView()
    if (vcs.length < this.#quorum.size) return
    const view = this.#views.view
    const plan = planNewView(view, vcs.map((vc) => vc.body))
    const prePrepares = plan.prePrepares.map((pp) => this.#sign(pp))
    const nv = this.#sign({ type: 'NewView', view, viewChanges: vcs, prePrepares })
    this.#outbox.promise(nv)
    this.#outbox.broadcast(nv)
    this.#installNewView(nv, plan)
  }

  #stepNewView (m: Signed<NewView>): void {
    if (this.#views.reached(m.body.view)) return
    const verdict = validateNewView(this.#quorum, m, this.#unsafe.trustNewViewO === true)
    if (!verdict.ok) return this.#reject('invalid-new-view')
    for (const vc of m.body.viewChanges) this.#auth.watchCertificates(vc.body)
    this.#outbox.promise(m)
    this.#installNewView(m, verdict.plan)
  }

  #installNewView (nv: Signed<NewView>, plan: NewViewPlan): void {
    this.#views.install(nv, this.#ticks)
    this.#elapsed = 0
    this.#requests.clearAssigned()
    this.#log.clearSlots()
    if (plan.stableSeq > this.#low) this.#adoptStable({ seq: plan.stableSeq, stateDigest: plan.stableDigest, proof: plan.stableProof })
    this.#lastAssigned = Math.max(this.#low, ...nv.body.prePrepares.map((pp) => pp.body.seq))
    this.#highestPrePrepared = this.#low
    for (const pp of nv.body.prePrepares) {
      if (pp.body.seq <= this.#low) continue
      for (const r of pp.body.batch) this.#requests.assign(r)
      this.#acceptPrePrepare(pp)
    }
    if (!this.#views.isPrimary()) for (const p of this.#requests.waiting()) this.#forward(p.request)
    this.#replayDeferred()
  }

  // ---- restart ----

  #restore (r: PbftRestore): void {
    if (r.stable !== undefined) this.#checkpoints.restore(r.stable)
    this.#execution.restore(r.executedSeq)
    this.#lastAssigned = Math.max(r.executedSeq, this.#low)
    // Crashed while fetching a checkpoint's state: fetch it again.
    this.#execution.fetchIfBehind(this.#checkpoints.stable)
    for (const m of r.promises) {
      const b = m.body
      if (b.type === 'ViewChange') {
        this.#views.restoreViewChange(m as Signed<ViewChange>)
      } else if (b.type === 'NewView') {
        if (!this.#views.restoreNewView(m as Signed<NewView>)) continue
        this.#log.clearSlots()
        for (const pp of b.prePrepares) if (pp.body.seq > this.#low) this.#restoreVote(pp)
      } else if (b.type === 'Checkpoint' && m.from === this.id && b.seq >= this.#low) {
        this.#checkpoints.keepOwn(m as Signed<Checkpoint>)
      } else if ((b.type === 'PrePrepare' || b.type === 'Prepare' || b.type === 'Commit') && b.seq > this.#low && b.view === this.#views.view) {
        this.#restoreVote(m as Signed<PrePrepare | Prepare | Commit>)
      }
    }
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
      for (const r of b.batch) this.#requests.assign(r)
      return
    }
    if (b.type === 'Prepare') {
      slot.prepares.set(m.from, m as Signed<Prepare>)
      if (m.from === this.id) slot.ownPrepare = m as Signed<Prepare>
      this.#log.prepare(b.seq, slot, this.#quorum.size - 1)
      return
    }
    slot.commits.set(m.from, m as Signed<Commit>)
    slot.ownCommit = m as Signed<Commit>
  }

  // ---- helpers ----

  #sign<B extends PbftBody> (body: B): Signed<B> {
    return sign(this.#signer, this.id, body)
  }

  #reject (reason: string): void {
    this.#rejected[reason] = (this.#rejected[reason] ?? 0) + 1
  }
}

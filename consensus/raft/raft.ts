import assert from 'node:assert/strict'
import type { Rng } from '../../base/clock.js'
import type { ConfState, ConsensusCore, Entry, HardState, NodeId, ProposeResult, RequestId, Snapshot } from '../types.js'
import { type ConfChange, applyConfChange, decodeConfChange, encodeConfChange, validConfChange } from './conf-change.js'
import { type MessageType, type RaftMessage, RAFT_MESSAGE_ENTRIES_MAX, message } from './messages.js'
import { Progress } from './progress.js'
import type { RaftStorage } from './raft-storage.js'

// A pure, deterministic Raft core in the shape of etcd-io/raft's RawNode: tick/step/propose in,
// Ready out. No I/O, no clock, no global randomness (the election jitter comes from an injected Rng).

export type Role = 'follower' | 'pre-candidate' | 'candidate' | 'leader'

export interface RaftConfig {
  id: NodeId
  rng: Rng
  /** Rebuilt from durable storage (raft-persistence.ts) or RaftStorage.bootstrap(conf). */
  storage: RaftStorage
  /** Index the application state already reflects on restart (defaults to the snapshot index). */
  applied?: number
  electionTicks?: number
  heartbeatTicks?: number
  preVote?: boolean
  checkQuorum?: boolean
  appendEntriesMax?: number
  appendBytesMax?: number
  inflightMax?: number
  /** Bound of the leader's proposal queue: appended but not yet committed entries. */
  uncommittedEntriesMax?: number
  readIndexPendingMax?: number
  committedEntriesPerReadyMax?: number
  /**
   * Take a snapshot once this many entries were applied since the last one and their data is at
   * least as large as the last snapshot (or SNAPSHOT_DEFER_FACTOR times this many were applied).
   */
  snapshotEntries?: number
  /** Entries kept below a new snapshot so slightly lagging followers need no snapshot. */
  compactionRetainEntries?: number
  /** Serialises the state machine as of the applied index; without it the log is never compacted. */
  takeSnapshot?: () => Uint8Array
  /** Test-only bugs, so tests can prove the simulator's checkers catch them. */
  unsafe?: { commitOldTermEntries?: boolean, voteIgnoringLog?: boolean }
}

export interface ReadState { context: string, index: number }

export interface RaftReady {
  hardState?: HardState
  /** From the leader: persist it (it replaces the whole log), then restore the state machine. */
  snapshot?: Snapshot
  /** Persist; stored entries at or after entries[0].index are replaced. */
  entries: Entry[]
  /** A snapshot taken locally: persist it and delete log entries below firstIndex. */
  compaction?: { snapshot: Snapshot, firstIndex: number }
  messages: RaftMessage[]
  committedEntries: Entry[]
  /** ReadIndex results: serve the read once applied >= index. */
  readStates: ReadState[]
}

export type ReadIndexResult = ProposeResult
export type ConfChangeResult = ProposeResult | { ok: false, reason: 'conf-pending' | 'invalid-conf-change' }

export interface RaftStatus {
  id: NodeId
  role: Role
  term: number
  vote: NodeId
  lead: NodeId
  commit: number
  applied: number
  firstIndex: number
  lastIndex: number
  conf: ConfState
  progress: ReadonlyMap<NodeId, Progress>
  leadTransferee: NodeId
}

interface PendingRead { key: string, from: NodeId, context: string, index: number, acks: Set<NodeId> }

const TRANSFER = 'transfer'
/** A snapshot is deferred (its state larger than the log since the last one) for at most this many times snapshotEntries. */
const SNAPSHOT_DEFER_FACTOR = 16

export class RaftCore implements ConsensusCore<RaftMessage, RaftReady> {
  readonly id: NodeId
  readonly storage: RaftStorage
  readonly #rng: Rng
  readonly #electionTicks: number
  readonly #heartbeatTicks: number
  readonly #preVote: boolean
  readonly #checkQuorum: boolean
  readonly #appendEntriesMax: number
  readonly #appendBytesMax: number
  readonly #inflightMax: number
  readonly #uncommittedEntriesMax: number
  readonly #readIndexPendingMax: number
  readonly #committedEntriesPerReadyMax: number
  readonly #snapshotEntries: number
  readonly #compactionRetainEntries: number
  readonly #takeSnapshot: (() => Uint8Array) | undefined
  readonly #unsafe: NonNullable<RaftConfig['unsafe']>

  #role: Role = 'follower'
  #term: number
  #vote: NodeId
  #lead: NodeId = ''
  #commit: number
  #applied: number
  #conf: ConfState
  #confScannedTo: number
  #pendingConfIndex = 0
  #electionElapsed = 0
  #heartbeatElapsed = 0
  #randomizedElectionTimeout = 0
  #votes = new Map<NodeId, boolean>()
  #progress = new Map<NodeId, Progress>()
  #leadTransferee: NodeId = ''
  #messages: RaftMessage[] = []
  #readStates: ReadState[] = []
  #pendingReads: PendingRead[] = []
  #readsAwaitingCommit: PendingRead[] = []
  #readSeq = 0
  #unstableFrom: number
  #persistedHardState: HardState
  #receivedSnapshot: Snapshot | undefined
  #localSnapshot: { snapshot: Snapshot, firstIndex: number } | undefined
  /** Entry data applied since the last snapshot: a snapshot rewrites the whole state, so it waits until the log is as large. */
  #appliedBytesSinceSnapshot = 0
  #readyOutstanding = false
  #forwardedSinceReady = 0

  constructor (config: RaftConfig) {
    this.id = config.id
    this.storage = config.storage
    this.#rng = config.rng
    this.#electionTicks = config.electionTicks ?? 10
    this.#heartbeatTicks = config.heartbeatTicks ?? 1
    assert.ok(this.#heartbeatTicks < this.#electionTicks, 'heartbeat must be shorter than the election timeout')
    this.#preVote = config.preVote ?? true
    this.#checkQuorum = config.checkQuorum ?? true
    this.#appendEntriesMax = Math.min(config.appendEntriesMax ?? 64, RAFT_MESSAGE_ENTRIES_MAX)
    this.#appendBytesMax = config.appendBytesMax ?? 1024 * 1024
    this.#inflightMax = config.inflightMax ?? 4
    this.#uncommittedEntriesMax = config.uncommittedEntriesMax ?? 1024
    this.#readIndexPendingMax = config.readIndexPendingMax ?? 256
    this.#committedEntriesPerReadyMax = config.committedEntriesPerReadyMax ?? 256
    this.#snapshotEntries = config.snapshotEntries ?? 1000
    this.#compactionRetainEntries = config.compactionRetainEntries ?? 100
    this.#takeSnapshot = config.takeSnapshot
    this.#unsafe = config.unsafe ?? {}
    const hs = this.storage.hardState
    const snapshotIndex = this.storage.snapshot().meta.index
    this.#term = hs.term
    this.#vote = hs.vote
    this.#commit = Math.max(hs.commit, snapshotIndex)
    assert.ok(this.#commit <= this.storage.lastIndex(), 'commit beyond the stored log')
    this.#applied = config.applied ?? snapshotIndex
    assert.ok(this.#applied >= snapshotIndex && this.#applied <= this.#commit, 'applied outside [snapshot, commit]')
    this.#conf = this.#confAt(this.#commit)
    this.#confScannedTo = this.#commit
    this.#unstableFrom = this.storage.lastIndex() + 1
    this.#persistedHardState = this.#hardState()
    this.#resetRandomizedElectionTimeout()
  }

  // ---- inputs ----

  tick (): void {
    this.#electionElapsed++
    if (this.#role === 'leader') {
      this.#tickLeader()
      return
    }
    if (this.#promotable() && this.#electionElapsed >= this.#randomizedElectionTimeout) {
      this.#electionElapsed = 0
      this.#campaign(this.#preVote ? 'pre' : 'real', false)
    }
  }

  step (m: RaftMessage): void {
    if (m.to !== this.id || m.from === this.id) return
    // Only forwarded requests travel without a term (as etcd's local messages).
    if ((m.term === 0) !== (m.type === 'MsgProp' || m.type === 'MsgReadIndex')) return
    if (m.term > this.#term && !this.#stepHigherTerm(m)) return
    if (m.term < this.#term && m.term !== 0) {
      this.#stepLowerTerm(m)
      return
    }
    if (m.type === 'MsgVote' || m.type === 'MsgPreVote') {
      this.#stepVoteRequest(m)
      return
    }
    if (this.#role === 'leader') this.#stepLeader(m)
    else if (this.#role === 'follower') this.#stepFollower(m)
    else this.#stepCandidate(m)
  }

  propose (data: Uint8Array, requestId?: RequestId): ProposeResult {
    const entry: Entry = { term: 0, index: 0, type: 'normal', data }
    if (requestId !== undefined) entry.requestId = requestId
    if (this.#role === 'leader') return this.#appendProposal([entry])
    if (this.#lead === '') return { ok: false, reason: 'no-leader' }
    // A follower's queue is its outbox until the next ready(): bound it like the leader's.
    if (this.#forwardedSinceReady >= this.#uncommittedEntriesMax) return { ok: false, reason: 'queue-full' }
    this.#forwardedSinceReady++
    this.#send(message('MsgProp', this.id, this.#lead, 0, { entries: [entry] }))
    return { ok: true }
  }

  /** Leader only: one membership change at a time, after the previous one committed. */
  proposeConfChange (cc: ConfChange): ConfChangeResult {
    if (this.#role !== 'leader') return { ok: false, reason: this.#lead === '' ? 'no-leader' : 'not-leader' }
    if (this.#pendingConfIndex > this.#commit || this.storage.term(this.#commit) !== this.#term) {
      return { ok: false, reason: 'conf-pending' }
    }
    if (!validConfChange(this.#conf, cc)) return { ok: false, reason: 'invalid-conf-change' }
    const result = this.#appendProposal([{ term: 0, index: 0, type: 'conf', data: encodeConfChange(cc) }])
    if (result.ok) this.#pendingConfIndex = this.storage.lastIndex()
    return result
  }

  /** Linearizable read: a ReadState with this context appears in a later Ready. */
  readIndex (context: string): ReadIndexResult {
    if (this.#role === 'leader') return this.#leaderReadIndex(this.id, context)
    if (this.#lead === '') return { ok: false, reason: 'no-leader' }
    if (this.#forwardedSinceReady >= this.#readIndexPendingMax) return { ok: false, reason: 'queue-full' }
    this.#forwardedSinceReady++
    this.#send(message('MsgReadIndex', this.id, this.#lead, 0, { context }))
    return { ok: true }
  }

  /** Graceful stop: hand leadership to `to` once it has caught up (MsgTimeoutNow). */
  transferLeadership (to: NodeId): boolean {
    if (this.#role !== 'leader' || to === this.id || !this.#conf.voters.includes(to)) return false
    this.#leadTransferee = to
    this.#electionElapsed = 0
    const pr = this.#progress.get(to)!
    if (pr.match === this.storage.lastIndex()) this.#send(message('MsgTimeoutNow', this.id, to, this.#term))
    else this.#sendAppend(to, true)
    return true
  }

  /** Starts an election now (tests, bootstrap of a single node). */
  campaign (): void {
    if (this.#role !== 'leader') this.#campaign(this.#preVote ? 'pre' : 'real', false)
  }

  // ---- outputs ----

  hasReady (): boolean {
    return this.#messages.length > 0 || this.#readStates.length > 0 || this.#unstableFrom <= this.storage.lastIndex() ||
      this.#receivedSnapshot !== undefined || this.#localSnapshot !== undefined || this.#commit > this.#applied ||
      !sameHardState(this.#hardState(), this.#persistedHardState)
  }

  ready (): RaftReady {
    assert.ok(!this.#readyOutstanding, 'ready() called again before advance()')
    this.#readyOutstanding = true
    const applyFrom = Math.max(this.#applied, this.#receivedSnapshot?.meta.index ?? 0) + 1
    const applyTo = Math.min(this.#commit, applyFrom + this.#committedEntriesPerReadyMax - 1)
    const rd: RaftReady = {
      entries: this.storage.entries(this.#unstableFrom, Infinity),
      messages: this.#messages,
      committedEntries: applyTo >= applyFrom ? this.storage.entries(applyFrom, applyTo + 1) : [],
      readStates: this.#readStates
    }
    this.#messages = []
    this.#readStates = []
    this.#forwardedSinceReady = 0
    const hs = this.#hardState()
    if (!sameHardState(hs, this.#persistedHardState)) {
      // Durable promises only move forward: a term once seen, a vote within a term, a commit.
      assert.ok(hs.term >= this.#persistedHardState.term, 'term decreased')
      assert.ok(hs.term > this.#persistedHardState.term || this.#persistedHardState.vote === '' || hs.vote === this.#persistedHardState.vote, 'vote changed within a term')
      assert.ok(hs.commit >= this.#persistedHardState.commit, 'commit decreased')
      rd.hardState = hs
    }
    if (this.#receivedSnapshot !== undefined) rd.snapshot = this.#receivedSnapshot
    if (this.#localSnapshot !== undefined) rd.compaction = this.#localSnapshot
    return rd
  }

  advance (rd: RaftReady): void {
    assert.ok(this.#readyOutstanding, 'advance() without ready()')
    this.#readyOutstanding = false
    if (rd.hardState !== undefined) {
      this.#persistedHardState = rd.hardState
      this.storage.hardState = rd.hardState
    }
    if (rd.snapshot !== undefined) {
      if (this.#receivedSnapshot === rd.snapshot) this.#receivedSnapshot = undefined
      this.#applied = Math.max(this.#applied, rd.snapshot.meta.index)
    }
    if (rd.compaction !== undefined && this.#localSnapshot === rd.compaction) this.#localSnapshot = undefined
    const last = rd.entries[rd.entries.length - 1]
    // Log matching: if the entry at last.index still has last.term, every persisted entry is still ours.
    if (last !== undefined && this.storage.term(last.index) === last.term) {
      this.#unstableFrom = Math.max(this.#unstableFrom, last.index + 1)
    }
    const lastApplied = rd.committedEntries[rd.committedEntries.length - 1]
    for (const e of rd.committedEntries) this.#appliedBytesSinceSnapshot += e.data.length
    if (lastApplied !== undefined) {
      assert.ok(lastApplied.index <= this.#commit, 'applied beyond commit')
      this.#applied = Math.max(this.#applied, lastApplied.index)
    }
    this.#maybeCompact()
  }

  status (): RaftStatus {
    return {
      id: this.id,
      role: this.#role,
      term: this.#term,
      vote: this.#vote,
      lead: this.#lead,
      commit: this.#commit,
      applied: this.#applied,
      firstIndex: this.storage.firstIndex(),
      lastIndex: this.storage.lastIndex(),
      conf: this.#conf,
      progress: this.#progress,
      leadTransferee: this.#leadTransferee
    }
  }

  // ---- roles ----

  #becomeFollower (term: number, lead: NodeId): void {
    if (term > this.#term) {
      this.#term = term
      this.#vote = ''
    }
    this.#role = 'follower'
    this.#lead = lead
    this.#reset()
  }

  #becomeLeader (): void {
    assert.ok(this.#role === 'candidate', 'only a candidate becomes leader')
    this.#role = 'leader'
    this.#lead = this.id
    this.#reset()
    for (const node of this.#members()) this.#progress.set(node, new Progress(this.storage.lastIndex() + 1, this.#inflightMax))
    // Conservatively treat any uncommitted tail as possibly holding a conf change.
    this.#pendingConfIndex = this.storage.lastIndex()
    // The no-op lets the leader commit (and so serve reads, admit conf changes) in its own term.
    this.#appendProposal([{ term: 0, index: 0, type: 'normal', data: new Uint8Array() }], true)
  }

  #reset (): void {
    this.#electionElapsed = 0
    this.#heartbeatElapsed = 0
    this.#resetRandomizedElectionTimeout()
    this.#votes.clear()
    this.#progress.clear()
    this.#leadTransferee = ''
    this.#pendingReads = []
    this.#readsAwaitingCommit = []
  }

  #campaign (kind: 'pre' | 'real', transfer: boolean): void {
    if (!this.#promotable()) return
    let voteTerm: number
    if (kind === 'pre') {
      this.#role = 'pre-candidate'
      this.#lead = ''
      this.#votes.clear()
      voteTerm = this.#term + 1
    } else {
      this.#becomeFollower(this.#term + 1, '')
      this.#role = 'candidate'
      this.#vote = this.id
      voteTerm = this.#term
    }
    this.#votes.set(this.id, true)
    if (this.#tallyVotes() === 'won') return
    const type: MessageType = kind === 'pre' ? 'MsgPreVote' : 'MsgVote'
    const lastIndex = this.storage.lastIndex()
    for (const node of this.#conf.voters) {
      if (node === this.id) continue
      this.#send(message(type, this.id, node, voteTerm, {
        index: lastIndex, logTerm: this.storage.term(lastIndex)!, context: transfer ? TRANSFER : ''
      }))
    }
  }

  #tallyVotes (): 'won' | 'lost' | 'pending' {
    let granted = 0
    let rejected = 0
    for (const node of this.#conf.voters) {
      const v = this.#votes.get(node)
      if (v === true) granted++
      if (v === false) rejected++
    }
    const q = quorum(this.#conf.voters.length)
    if (granted >= q) {
      if (this.#role === 'pre-candidate') this.#campaign('real', false)
      else this.#becomeLeader()
      return 'won'
    }
    if (rejected >= q) {
      this.#becomeFollower(this.#term, '')
      return 'lost'
    }
    return 'pending'
  }

  // ---- step ----

  /** Returns false when the message must be ignored. */
  #stepHigherTerm (m: RaftMessage): boolean {
    if (m.type === 'MsgVote' || m.type === 'MsgPreVote') {
      // Check-quorum lease: while a leader is heard from, ignore disruptive candidates.
      const inLease = this.#checkQuorum && this.#lead !== '' && this.#electionElapsed < this.#electionTicks
      if (inLease && m.context !== TRANSFER) return false
    }
    if (m.type === 'MsgPreVote' || (m.type === 'MsgPreVoteResp' && !m.reject)) return true
    const fromLeader = m.type === 'MsgApp' || m.type === 'MsgHeartbeat' || m.type === 'MsgSnap'
    this.#becomeFollower(m.term, fromLeader ? m.from : '')
    return true
  }

  #stepLowerTerm (m: RaftMessage): void {
    if ((this.#checkQuorum || this.#preVote) && (m.type === 'MsgHeartbeat' || m.type === 'MsgApp')) {
      // Tell a deposed leader about the new term (otherwise pre-vote could leave it stuck).
      this.#send(message('MsgAppResp', this.id, m.from, this.#term))
    } else if (m.type === 'MsgPreVote') {
      this.#send(message('MsgPreVoteResp', this.id, m.from, this.#term, { reject: true }))
    }
  }

  #stepVoteRequest (m: RaftMessage): void {
    const canVote = this.#vote === m.from || (this.#vote === '' && this.#lead === '') ||
      (m.type === 'MsgPreVote' && m.term > this.#term)
    const respType: MessageType = m.type === 'MsgVote' ? 'MsgVoteResp' : 'MsgPreVoteResp'
    if (canVote && (this.#unsafe.voteIgnoringLog === true || this.#isUpToDate(m.index, m.logTerm))) {
      this.#send(message(respType, this.id, m.from, m.term))
      if (m.type === 'MsgVote') {
        this.#electionElapsed = 0
        this.#vote = m.from
      }
    } else {
      this.#send(message(respType, this.id, m.from, this.#term, { reject: true }))
    }
  }

  #stepFollower (m: RaftMessage): void {
    switch (m.type) {
      case 'MsgApp':
      case 'MsgHeartbeat':
      case 'MsgSnap':
        this.#electionElapsed = 0
        this.#lead = m.from
        if (m.type === 'MsgApp') this.#handleAppend(m)
        else if (m.type === 'MsgSnap') this.#handleSnapshot(m)
        else this.#handleHeartbeat(m)
        break
      case 'MsgTimeoutNow':
        this.#campaign('real', true)
        break
      case 'MsgReadIndexResp':
        if (this.#readStates.length < this.#readIndexPendingMax) this.#readStates.push({ context: m.context, index: m.index })
        break
      default:
        // MsgProp/MsgReadIndex from peers are dropped: only local requests are forwarded (no loops).
        break
    }
  }

  #stepCandidate (m: RaftMessage): void {
    switch (m.type) {
      case 'MsgApp':
      case 'MsgHeartbeat':
      case 'MsgSnap':
        this.#becomeFollower(m.term, m.from)
        this.#stepFollower(m)
        break
      case 'MsgVoteResp':
      case 'MsgPreVoteResp':
        if ((m.type === 'MsgVoteResp') !== (this.#role === 'candidate')) return
        if (!this.#votes.has(m.from)) this.#votes.set(m.from, !m.reject)
        this.#tallyVotes()
        break
      default:
        break
    }
  }

  #stepLeader (m: RaftMessage): void {
    const pr = this.#progress.get(m.from)
    switch (m.type) {
      case 'MsgProp':
        if (m.entries.length > 0 && m.entries.length <= this.#appendEntriesMax && m.entries.every((e) => e.type === 'normal')) {
          this.#appendProposal(m.entries.map((e) => ({ ...e })))
        }
        break
      case 'MsgReadIndex':
        if (pr !== undefined) this.#leaderReadIndex(m.from, m.context)
        break
      case 'MsgAppResp':
        if (pr !== undefined) this.#handleAppendResponse(m, pr)
        break
      case 'MsgHeartbeatResp':
        if (pr === undefined) break
        pr.recentActive = true
        pr.probeSent = false
        // A lost MsgApp must not stall a full pipeline forever (etcd frees one slot per heartbeat).
        if (pr.state === 'replicate' && pr.paused()) pr.inflight.shift()
        if (pr.match < this.storage.lastIndex()) this.#sendAppend(m.from, true)
        if (m.context !== '') this.#ackRead(m.context, m.from)
        break
      default:
        break
    }
  }

  // ---- leader ----

  #tickLeader (): void {
    this.#heartbeatElapsed++
    if (this.#electionElapsed >= this.#electionTicks) {
      this.#electionElapsed = 0
      if (this.#checkQuorum && !this.#quorumActive()) {
        this.#becomeFollower(this.#term, '')
        return
      }
      this.#leadTransferee = ''
      // An InstallSnapshot unanswered for a whole election timeout was probably lost: probe again.
      for (const pr of this.#progress.values()) if (pr.state === 'snapshot') pr.becomeProbe()
    }
    if (this.#heartbeatElapsed >= this.#heartbeatTicks) {
      this.#heartbeatElapsed = 0
      this.#broadcastHeartbeat(this.#pendingReads[this.#pendingReads.length - 1]?.key ?? '')
    }
  }

  #quorumActive (): boolean {
    let active = 0
    for (const node of this.#conf.voters) {
      const pr = this.#progress.get(node)
      if (node === this.id || pr?.recentActive === true) active++
    }
    for (const [node, pr] of this.#progress) if (node !== this.id) pr.recentActive = false
    return active >= quorum(this.#conf.voters.length)
  }

  #appendProposal (entries: Entry[], noOp = false): ProposeResult {
    if (this.#leadTransferee !== '') return { ok: false, reason: 'not-leader' }
    if (!noOp && this.storage.lastIndex() - this.#commit + entries.length > this.#uncommittedEntriesMax) {
      return { ok: false, reason: 'queue-full' }
    }
    let index = this.storage.lastIndex()
    this.storage.append(entries.map((e) => ({ ...e, term: this.#term, index: ++index })))
    const self = this.#progress.get(this.id)
    if (self !== undefined) self.maybeUpdate(index)
    this.#broadcastAppend()
    this.#maybeCommit()
    return { ok: true }
  }

  /** sendIfEmpty: the commit index advanced, so followers hear it now rather than at the next heartbeat. */
  #broadcastAppend (sendIfEmpty = false): void {
    for (const node of this.#progress.keys()) if (node !== this.id) this.#sendAppend(node, sendIfEmpty)
  }

  #broadcastHeartbeat (context: string): void {
    for (const [node, pr] of this.#progress) {
      if (node === this.id) continue
      this.#send(message('MsgHeartbeat', this.id, node, this.#term, { commit: Math.min(pr.match, this.#commit), context }))
    }
  }

  /** Sends entries (or a snapshot) to `to` unless paused; returns whether something was sent. */
  #sendAppend (to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.#progress.get(to)!
    if (pr.paused()) return false
    const prevIndex = pr.next - 1
    const prevTerm = this.storage.term(prevIndex)
    if (prevTerm === undefined || pr.next < this.storage.firstIndex()) {
      const snapshot = this.storage.snapshot()
      pr.becomeSnapshot(snapshot.meta.index)
      this.#send(message('MsgSnap', this.id, to, this.#term, { snapshot }))
      return true
    }
    const entries = this.storage.entries(pr.next, Infinity, this.#appendEntriesMax, this.#appendBytesMax)
    if (entries.length === 0 && !sendIfEmpty) return false
    this.#send(message('MsgApp', this.id, to, this.#term, { index: prevIndex, logTerm: prevTerm, entries, commit: this.#commit }))
    pr.sent(prevIndex + entries.length, entries.length)
    return true
  }

  #handleAppendResponse (m: RaftMessage, pr: Progress): void {
    pr.recentActive = true
    if (m.reject) {
      let hint = m.rejectHint
      if (m.logTerm > 0) hint = this.#findConflictByTerm(m.rejectHint, m.logTerm)
      if (pr.maybeDecrTo(m.index, hint)) this.#sendAppend(m.from, true)
      return
    }
    const wasPaused = pr.paused()
    if (pr.maybeUpdate(m.index)) {
      if (pr.state === 'probe' || (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot)) pr.becomeReplicate()
      if (this.#maybeCommit()) this.#broadcastAppend(true)
      else if (wasPaused) this.#sendAppend(m.from, false)
      if (m.from === this.#leadTransferee && pr.match === this.storage.lastIndex()) {
        this.#send(message('MsgTimeoutNow', this.id, m.from, this.#term))
      }
    }
    // Pipelining: keep the follower's window full.
    for (let i = 0; i < this.#inflightMax && this.#progress.has(m.from) && this.#sendAppend(m.from, false); i++);
  }

  #maybeCommit (): boolean {
    const matches = this.#conf.voters.map((n) => this.#progress.get(n)?.match ?? 0).sort((a, b) => b - a)
    const index = matches[quorum(matches.length) - 1] ?? 0
    if (index <= this.#commit) return false
    // Raft §5.4.2: only entries of the current term are committed by counting replicas.
    if (this.storage.term(index) !== this.#term && this.#unsafe.commitOldTermEntries !== true) return false
    this.#commitTo(index)
    return true
  }

  #leaderReadIndex (from: NodeId, context: string): ReadIndexResult {
    if (this.#pendingReads.length + this.#readsAwaitingCommit.length >= this.#readIndexPendingMax) {
      return { ok: false, reason: 'queue-full' }
    }
    const read: PendingRead = { key: `r${++this.#readSeq}`, from, context, index: 0, acks: new Set([this.id]) }
    if (this.storage.term(this.#commit) !== this.#term) this.#readsAwaitingCommit.push(read)
    else this.#startRead(read)
    return { ok: true }
  }

  #startRead (read: PendingRead): void {
    read.index = this.#commit
    if (this.#conf.voters.length === 1) {
      this.#releaseRead(read)
      return
    }
    this.#pendingReads.push(read)
    this.#broadcastHeartbeat(read.key)
  }

  #ackRead (key: string, from: NodeId): void {
    const at = this.#pendingReads.findIndex((r) => r.key === key)
    const read = this.#pendingReads[at]
    if (read === undefined || !this.#conf.voters.includes(from)) return
    read.acks.add(from)
    if (read.acks.size < quorum(this.#conf.voters.length)) return
    // A quorum confirmed leadership after every earlier request too.
    for (const r of this.#pendingReads.splice(0, at + 1)) this.#releaseRead(r)
  }

  #releaseRead (read: PendingRead): void {
    if (read.from === this.id) this.#readStates.push({ context: read.context, index: read.index })
    else this.#send(message('MsgReadIndexResp', this.id, read.from, this.#term, { index: read.index, context: read.context }))
  }

  // ---- follower ----

  #handleAppend (m: RaftMessage): void {
    if (m.index < this.#commit) {
      this.#send(message('MsgAppResp', this.id, m.from, this.#term, { index: this.#commit }))
      return
    }
    if (!m.entries.every((e, i) => e.index === m.index + 1 + i && e.term <= m.term && e.term >= (i === 0 ? m.logTerm : m.entries[i - 1]!.term))) {
      return
    }
    if (this.storage.term(m.index) !== m.logTerm) {
      const hintIndex = this.#findConflictByTerm(Math.min(m.index, this.storage.lastIndex()), m.logTerm)
      this.#send(message('MsgAppResp', this.id, m.from, this.#term, {
        index: m.index, reject: true, rejectHint: hintIndex, logTerm: this.storage.term(hintIndex) ?? 0
      }))
      return
    }
    const conflict = m.entries.find((e) => this.storage.term(e.index) !== e.term)
    if (conflict !== undefined) {
      assert.ok(conflict.index > this.#commit, `log matching: leader overwrites committed entry ${conflict.index}`)
      this.storage.append(m.entries.slice(conflict.index - m.index - 1))
      this.#unstableFrom = Math.min(this.#unstableFrom, conflict.index)
    }
    const lastNew = m.index + m.entries.length
    assert.equal(this.storage.term(lastNew), m.entries.at(-1)?.term ?? m.logTerm, 'log matching after append')
    this.#commitTo(Math.min(m.commit, lastNew))
    this.#send(message('MsgAppResp', this.id, m.from, this.#term, { index: lastNew }))
  }

  #handleHeartbeat (m: RaftMessage): void {
    this.#commitTo(Math.min(m.commit, this.storage.lastIndex()))
    this.#send(message('MsgHeartbeatResp', this.id, m.from, this.#term, { context: m.context }))
  }

  #handleSnapshot (m: RaftMessage): void {
    const s = m.snapshot
    if (s === undefined || s.meta.conf.voters.length === 0) return
    if (s.meta.index <= this.#commit) {
      this.#send(message('MsgAppResp', this.id, m.from, this.#term, { index: this.#commit }))
      return
    }
    if (this.storage.term(s.meta.index) === s.meta.term) {
      this.#commitTo(s.meta.index)
    } else {
      this.storage.installSnapshot(s)
      this.#commit = s.meta.index
      this.#conf = s.meta.conf
      this.#confScannedTo = s.meta.index
      this.#unstableFrom = s.meta.index + 1
      this.#receivedSnapshot = s
      this.#localSnapshot = undefined
    }
    this.#send(message('MsgAppResp', this.id, m.from, this.#term, { index: s.meta.index }))
  }

  // ---- log ----

  #commitTo (index: number): void {
    if (index <= this.#commit) return
    assert.ok(index <= this.storage.lastIndex(), 'commit beyond the log')
    this.#commit = index
    this.#scanConfChanges()
    if (this.#role === 'leader' && this.storage.term(index) === this.#term) {
      const waiting = this.#readsAwaitingCommit
      this.#readsAwaitingCommit = []
      for (const read of waiting) this.#startRead(read)
    }
  }

  /** Applies conf entries as they commit; a leader then re-shapes its progress map. */
  #scanConfChanges (): void {
    const before = this.#conf
    for (let i = this.#confScannedTo + 1; i <= this.#commit; i++) {
      const e = this.storage.entry(i)
      if (e?.type === 'conf') this.#conf = applyConfChange(this.#conf, decodeConfChange(e.data))
    }
    this.#confScannedTo = this.#commit
    if (this.#conf === before || this.#role !== 'leader') return
    if (!this.#conf.voters.includes(this.id)) {
      // A leader that removed itself tells the others that the removal committed before it steps
      // down: they apply configurations as they commit, and without this one they would wait for
      // its vote in the old configuration — for good once it stopped (the org-join delegate test).
      this.#broadcastHeartbeat('')
      this.#becomeFollower(this.#term, '')
      return
    }
    for (const node of this.#members()) {
      if (!this.#progress.has(node)) this.#progress.set(node, new Progress(this.storage.lastIndex() + 1, this.#inflightMax))
    }
    for (const node of this.#progress.keys()) if (!this.#members().includes(node)) this.#progress.delete(node)
    if (this.#maybeCommit()) this.#broadcastAppend(true)
  }

  #confAt (index: number): ConfState {
    let conf = this.storage.snapshot().meta.conf
    for (let i = this.storage.snapshot().meta.index + 1; i <= index; i++) {
      const e = this.storage.entry(i)
      if (e?.type === 'conf') conf = applyConfChange(conf, decodeConfChange(e.data))
    }
    return conf
  }

  #maybeCompact (): void {
    const snapshotIndex = this.storage.snapshot().meta.index
    const due = this.#applied - snapshotIndex
    if (this.#takeSnapshot === undefined || due < this.#snapshotEntries) return
    // Amortised: snapshotting a large state every few entries cost more than the entries themselves.
    if (this.#appliedBytesSinceSnapshot < this.storage.snapshot().data.length && due < SNAPSHOT_DEFER_FACTOR * this.#snapshotEntries) return
    this.#appliedBytesSinceSnapshot = 0
    const meta = { index: this.#applied, term: this.storage.term(this.#applied)!, conf: this.#confAt(this.#applied) }
    const snapshot: Snapshot = { meta, data: this.#takeSnapshot() }
    const firstIndex = Math.max(this.storage.firstIndex(), this.#applied + 1 - this.#compactionRetainEntries)
    this.storage.compact(snapshot, firstIndex)
    this.#localSnapshot = { snapshot, firstIndex }
  }

  /** Largest index <= index whose term is <= term (etcd's fast back-off). */
  #findConflictByTerm (index: number, term: number): number {
    for (let i = index; i > 0; i--) {
      const t = this.storage.term(i)
      if (t === undefined || t <= term) return i
    }
    return 0
  }

  #isUpToDate (index: number, logTerm: number): boolean {
    const lastIndex = this.storage.lastIndex()
    const lastTerm = this.storage.term(lastIndex)!
    return logTerm > lastTerm || (logTerm === lastTerm && index >= lastIndex)
  }

  // ---- helpers ----

  #send (m: RaftMessage): void {
    this.#messages.push(m)
  }

  #promotable (): boolean {
    return this.#conf.voters.includes(this.id)
  }

  #members (): NodeId[] {
    return [...this.#conf.voters, ...this.#conf.learners]
  }

  #hardState (): HardState {
    return { term: this.#term, vote: this.#vote, commit: this.#commit }
  }

  #resetRandomizedElectionTimeout (): void {
    this.#randomizedElectionTimeout = this.#electionTicks + (this.#rng.nextU32() % this.#electionTicks)
  }
}

export function quorum (voters: number): number {
  return Math.floor(voters / 2) + 1
}

function sameHardState (a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit
}

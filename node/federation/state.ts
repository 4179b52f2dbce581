import { PBFT_ID_LENGTH_MAX, PBFT_OP_BYTES_MAX, PBFT_REPLICAS_MAX, quorumSize, sha256 } from '../../consensus/pbft/index.js'
import { decodeCanonical, encodeCanonical } from '../../base/codec.js'
import type { FedmeshError } from '../../base/errors.js'
import { type FederationOp, type OpenedOp, openOp } from './ops.js'
import {
  type FederationConfig, type GenesisOrg, FederationStateError, GENESIS_ID, KEY_HEX, decodeConfig, encodeConfig, instanceId, validConfig
} from './config.js'

// The federation's replicated state, as one org holds it in the state machine of its Raft log
// (org/org-state-machine.ts): which orgs are members in which epoch, the open governance votes, the
// audit heads anchored so far and the results of recent batches. Pure and deterministic: every org
// applies the same PBFT batches in the same order and so computes the same results (the replies a
// proposer counts f+1 of).
//
// Governance: admitting or revoking an org passes once a quorum of the current members (the PBFT
// quorum, 2f+1 when n = 3f+1) signed an approval of it; the membership then changes at once and a
// new epoch begins: a fresh PBFT instance over the new member set (instanceId), starting at seq 1.
// Requests ordered after the passing vote in the old instance are answered 'epoch-ended' (naming
// the org's epoch now) by every org alike, so their proposers re-submit them into the new epoch.
// Votes start afresh with the epoch; executed clients carry over (a request executed in the old
// epoch and re-submitted into the new one by a proposer that never heard its result gets that
// result, not a second execution). An org admitted into an epoch starts from the core it began
// with (`fedmesh federation export`), so it computes the same results as the others.

export interface BatchRequest { client: string, timestamp: number, op: Uint8Array }
/** One committed PBFT batch of instance `instance`, as the org's replica host hands it to its org's state machine. */
export interface FederationBatch {
  config: FederationConfig
  instance: string
  seq: number
  requests: BatchRequest[]
  /** A PBFT checkpoint seq: the state's digest after it is returned (and kept for replays). */
  checkpoint?: boolean
}

export type Outcome = 'applied' | 'recorded' | 'approved' | 'passed' | 'refused' | 'epoch-ended'
/** What every org answers for one request: identical bytes in every correct org. */
export interface RequestResult { epoch: number, seq: number, position: number, outcome: Outcome, reason: string }

/** A task the batch created, for the board to add (with its federation coordinates). */
export interface FederatedTask { position: number, opened: OpenedOp & { op: Extract<FederationOp, { kind: 'task' }> } }
export interface MembershipChange { action: 'admit' | 'revoke', org: GenesisOrg, epoch: number, seq: number }
export interface Anchor { node: string, root: string, auditSeq: number, head: string, epoch: number, seq: number }

/** A claim or result for a federated task, applied to every org's copy of it. */
export interface TaskUpdate { ref: string, status: 'claimed' | 'done' | 'failed', node: string, result?: string }
export interface AppliedBatch { results: Uint8Array[], tasks: FederatedTask[], updates: TaskUpdate[], anchors: Anchor[], change?: MembershipChange, digest?: Uint8Array }

/** Orgs below which a revocation is refused: with fewer, one crash stops the federation. */
export const MEMBERS_MIN = 3
const PROPOSALS_MAX = 64
/** Bounds the state an org hands a lagging one (well under the federation envelope bound). */
const EXECUTED_CLIENTS_MAX = 2048
const RECENT_BATCHES_MAX = 32
/** Batches every org node keeps (in memory, not in snapshots) to hand a laggard: a count and a byte bound. */
export const RETAINED_BATCHES_MAX = 512
/** A batch's size as it travels in a catch-up answer (op, client id, and framing). */
export function batchBytes (requests: readonly BatchRequest[]): number {
  return requests.reduce((sum, r) => sum + r.op.length + r.client.length + 16, 0)
}
const RETAINED_BATCH_BYTES_MAX = 8 * 1024 * 1024
const DIGESTS_MAX = 8
/** Federated tasks still open to a claim or result (oldest forgotten first: then 'unknown-task'). */
const OPEN_TASKS_MAX = 1024
export const CORE_BYTES_MAX = 900 * 1024
const CORE_FIELDS = 7
/** Cores exported before finished tasks were kept held one field less (snapshots and transfers from older nodes). */
const CORE_FIELDS_V1 = 6
/** Finished federated tasks remembered, so that finishing one again says so (oldest forgotten first: then 'unknown-task'). */
const FINISHED_TASKS_MAX = 1024
const ANCHORS_PER_NODE_MAX = 16
const ANCHORED_NODES_MAX = PBFT_REPLICAS_MAX * 64
const CHANGES_MAX = 256

/** Approvals a membership change needs: the PBFT quorum of the current members (any two intersect in a correct org). */
export const approvalsNeeded = quorumSize

function encodeResult (r: RequestResult): Uint8Array {
  return encodeCanonical([r.epoch, r.seq, r.position, r.outcome, r.reason])
}

export class FederationState {
  #config: FederationConfig
  #instance: string
  #lastSeq = 0
  /** Proposal key -> roots of the members that approved it (this epoch). */
  #votes = new Map<string, Set<string>>()
  /** Client ids executed lately (this epoch and before) -> their result: a request ordered twice is applied once. */
  #executed = new Map<string, Uint8Array>()
  /** Results of the latest batches: a host replaying a batch its org already applied gets them back. */
  #recent = new Map<number, Uint8Array[]>()
  #anchors = new Map<string, Anchor[]>()
  #changes: MembershipChange[] = []
  /** ref (epoch.seq.position) -> an unfinished federated task's target org and claimer. Carried across epochs. */
  #open = new Map<string, { target: string | null, claimer: string | null }>()
  /** ref -> how a federated task that left #open ended. Carried across epochs. */
  #finished = new Map<string, 'done' | 'failed'>()
  /** The core as the current epoch began: what an org admitted into it starts from. */
  #epochStart: Uint8Array
  /** The core at the latest checkpoint applied here (not part of snapshots): what a host hands a laggard. */
  #lastCheckpoint: { instance: string, seq: number, core: Uint8Array } | undefined
  /** Digests of the state at the latest checkpoint seqs (for replays). */
  #digests = new Map<number, Uint8Array>()
  /** `${instance}:${seq}` -> the requests of the latest batches applied here (not part of snapshots). */
  #retained = new Map<string, BatchRequest[]>()
  #retainedBytes = 0
  /**
   * The batch that ended the previous epoch, with its results, the digest of the old instance's
   * final state — what every later checkpoint of that instance certifies (nothing applies there any
   * more), so that it does not depend on how far each org got into the new epoch meanwhile.
   */
  #closing: { instance: string, seq: number, results: Uint8Array[], digest: Uint8Array } | undefined

  constructor (config: FederationConfig) {
    this.#config = validConfig(config)
    this.#instance = instanceId(this.#config)
    this.#epochStart = this.exportCore()
  }

  get config (): FederationConfig { return { ...this.#config, orgs: [...this.#config.orgs] } }
  get instance (): string { return this.#instance }
  get lastSeq (): number { return this.#lastSeq }
  get changes (): readonly MembershipChange[] { return this.#changes }
  /** Where the previous epoch ended: its instance and the seq of the batch that passed the vote. */
  get closing (): { instance: string, seq: number } | undefined {
    return this.#closing === undefined ? undefined : { instance: this.#closing.instance, seq: this.#closing.seq }
  }

  /** The requests of batch seq of instance, if applied here lately: what any org node hands a laggard. */
  retainedBatch (instance: string, seq: number): BatchRequest[] | undefined {
    return this.#retained.get(`${instance}:${seq}`)
  }

  #retain (batch: FederationBatch): void {
    const key = `${batch.instance}:${batch.seq}`
    const before = this.#retained.get(key)
    if (before !== undefined) this.#retainedBytes -= batchBytes(before)
    this.#retained.delete(key)
    this.#retained.set(key, batch.requests)
    this.#retainedBytes += batchBytes(batch.requests)
    while (this.#retained.size > RETAINED_BATCHES_MAX || this.#retainedBytes > RETAINED_BATCH_BYTES_MAX) {
      const [key, requests] = this.#retained.entries().next().value!
      this.#retained.delete(key)
      this.#retainedBytes -= batchBytes(requests)
    }
  }

  /** The state core just after checkpoint seq of instance, if that was the latest applied here. */
  checkpointCore (instance: string, seq: number): Uint8Array | undefined {
    const c = this.#lastCheckpoint
    return c !== undefined && c.instance === instance && c.seq === seq ? c.core : undefined
  }

  /** The core as this epoch began (`fedmesh federation export` hands it to an admitted org). */
  get epochStart (): Uint8Array { return this.#epochStart }

  /** A node's anchored heads, oldest first. */
  anchorsOf (node: string): readonly Anchor[] { return this.#anchors.get(node) ?? [] }

  apply (batch: FederationBatch): AppliedBatch {
    if (batch.instance !== this.#instance) return this.#applyForeign(batch)
    const out = this.#applyBatch(batch)
    if (batch.checkpoint === true && out.digest === undefined) out.digest = this.#checkpointDigest(batch.seq)
    return out
  }

  /** A batch of an instance this org already left (or never joined): nothing of it applies. */
  #applyForeign (batch: FederationBatch): AppliedBatch {
    // Kept too: a laggard of the ended epoch replays up to that epoch's last checkpoint through them.
    this.#retain(batch)
    const ended = this.#closing?.instance === batch.instance ? this.#closing : undefined
    // The batch that ended the previous epoch, replayed by a new host: the same results as before.
    const results = ended?.seq === batch.seq
      ? ended.results
      : batch.requests.map((r, position) => this.#executed.get(r.client) ?? this.#result(batch.seq, position, 'epoch-ended', ''))
    const out: AppliedBatch = { results, tasks: [], updates: [], anchors: [] }
    if (batch.checkpoint === true) {
      // Of an instance left longer ago, or before its end: the same for every org that left it (no
      // replay on a copy reaches such a batch: a copy enters the next epoch at the closing batch).
      out.digest = ended !== undefined && batch.seq >= ended.seq ? ended.digest : leftInstanceDigest(batch.instance, batch.seq)
    }
    return out
  }

  #applyBatch (batch: FederationBatch): AppliedBatch {
    if (batch.seq <= this.#lastSeq) {
      const results = this.#recent.get(batch.seq)
      const digest = this.#digests.get(batch.seq)
      if (results === undefined || (batch.checkpoint === true && digest === undefined)) throw new FederationStateError('federation-replay-too-old', `batch ${batch.seq} was applied long ago (now at ${this.#lastSeq})`)
      return { results, tasks: [], updates: [], anchors: [], ...(batch.checkpoint === true ? { digest } : {}) }
    }
    if (batch.seq !== this.#lastSeq + 1) throw new FederationStateError('federation-batch-gap', `batch ${batch.seq} after ${this.#lastSeq}: batches apply in sequence order`)
    const out: AppliedBatch = { results: [], tasks: [], updates: [], anchors: [] }
    this.#retain(batch)
    for (const [position, request] of batch.requests.entries()) {
      if (out.change !== undefined) break
      const known = this.#executed.get(request.client)
      if (known !== undefined) {
        out.results.push(known)
        continue
      }
      const result = this.#applyRequest(batch.seq, position, request, out)
      this.#executed.set(request.client, result)
      if (this.#executed.size > EXECUTED_CLIENTS_MAX) this.#executed.delete(this.#executed.keys().next().value!)
      out.results.push(result)
    }
    if (out.change === undefined) {
      this.#lastSeq = batch.seq
      this.#recent.set(batch.seq, out.results)
      if (this.#recent.size > RECENT_BATCHES_MAX) this.#recent.delete(this.#recent.keys().next().value!)
      return out
    }
    // Ordered after the passing vote: the old epoch is over for them (the result names the new one).
    const closing = this.#instance
    const digest = sha256(this.exportCore())
    this.#beginEpoch(out.change)
    for (let position = out.results.length; position < batch.requests.length; position++) out.results.push(this.#result(batch.seq, position, 'epoch-ended', ''))
    this.#closing = { instance: closing, seq: batch.seq, results: out.results, digest }
    if (batch.checkpoint === true) out.digest = digest
    return out
  }

  #applyRequest (seq: number, position: number, request: BatchRequest, out: AppliedBatch): Uint8Array {
    let opened: OpenedOp
    try {
      opened = openOp(request.op, { instance: this.#instance, client: request.client, timestamp: request.timestamp })
    } catch (err) {
      return this.#result(seq, position, 'refused', (err as FedmeshError).code ?? 'op-malformed')
    }
    if (!this.#isMember(opened.root)) return this.#result(seq, position, 'refused', 'not-a-member')
    const op = opened.op
    switch (op.kind) {
      case 'task':
        if (op.target !== null && !this.#isMember(op.target)) return this.#result(seq, position, 'refused', 'target-not-a-member')
        out.tasks.push({ position, opened: opened as FederatedTask['opened'] })
        this.#open.set(`${this.#config.epoch}.${seq}.${position}`, { target: op.target, claimer: null })
        if (this.#open.size > OPEN_TASKS_MAX) this.#open.delete(this.#open.keys().next().value!)
        return this.#result(seq, position, 'applied', '')
      case 'claim': case 'finish': {
        const task = this.#open.get(op.ref)
        const finished = this.#finished.get(op.ref)
        if (task === undefined) return this.#result(seq, position, 'refused', finished !== undefined ? `already-${finished}` : 'unknown-task')
        if (op.kind === 'claim') {
          if (task.target !== null && task.target !== opened.root) return this.#result(seq, position, 'refused', 'not-the-target')
          if (task.claimer !== null) return this.#result(seq, position, 'refused', 'already-claimed')
          task.claimer = opened.node
          out.updates.push({ ref: op.ref, status: 'claimed', node: opened.node })
        } else {
          if (task.claimer !== opened.node) return this.#result(seq, position, 'refused', 'not-the-claimer')
          this.#open.delete(op.ref)
          this.#finished.set(op.ref, op.status)
          if (this.#finished.size > FINISHED_TASKS_MAX) this.#finished.delete(this.#finished.keys().next().value!)
          out.updates.push({ ref: op.ref, status: op.status, node: opened.node, result: op.result })
        }
        return this.#result(seq, position, 'applied', '')
      }
      case 'anchor': {
        const anchor: Anchor = { node: opened.node, root: opened.root, auditSeq: op.auditSeq, head: op.head, epoch: this.#config.epoch, seq }
        this.#recordAnchor(anchor)
        out.anchors.push(anchor)
        return this.#result(seq, position, 'recorded', '')
      }
      case 'admit': case 'revoke':
        return this.#vote(seq, position, opened.root, op, out)
    }
  }

  #vote (seq: number, position: number, voter: string, op: Extract<FederationOp, { kind: 'admit' | 'revoke' }>, out: AppliedBatch): Uint8Array {
    const orgs = this.#config.orgs
    let org: GenesisOrg
    if (op.kind === 'admit') {
      if (this.#isMember(op.root)) return this.#result(seq, position, 'refused', 'already-a-member')
      if (orgs.some((o) => o.name === op.name)) return this.#result(seq, position, 'refused', 'name-taken')
      if (orgs.length >= PBFT_REPLICAS_MAX) return this.#result(seq, position, 'refused', 'federation-full')
      org = { name: op.name, root: op.root }
    } else {
      const member = orgs.find((o) => o.root === op.root)
      if (member === undefined) return this.#result(seq, position, 'refused', 'not-a-member')
      if (orgs.length - 1 < MEMBERS_MIN) return this.#result(seq, position, 'refused', 'too-few-members')
      org = member
    }
    const key = `${op.kind}|${org.root}|${org.name}`
    let approvals = this.#votes.get(key)
    if (approvals === undefined) {
      if (this.#votes.size >= PROPOSALS_MAX) return this.#result(seq, position, 'refused', 'too-many-proposals')
      this.#votes.set(key, approvals = new Set())
    }
    approvals.add(voter)
    if (approvals.size < approvalsNeeded(orgs.length)) return this.#result(seq, position, 'approved', `${approvals.size}/${approvalsNeeded(orgs.length)}`)
    out.change = { action: op.kind, org, epoch: this.#config.epoch + 1, seq }
    return this.#result(seq, position, 'passed', `${approvals.size}/${approvalsNeeded(orgs.length)}`)
  }

  #beginEpoch (change: MembershipChange): void {
    const orgs = change.action === 'admit'
      ? [...this.#config.orgs, change.org].sort((a, b) => a.root < b.root ? -1 : 1)
      : this.#config.orgs.filter((o) => o.root !== change.org.root)
    this.#config = { genesis: this.#config.genesis, epoch: change.epoch, orgs }
    this.#instance = instanceId(this.#config)
    this.#lastSeq = 0
    this.#votes = new Map()
    this.#recent = new Map()
    this.#digests = new Map()
    this.#epochStart = this.exportCore()
    this.#changes.push(change)
    if (this.#changes.length > CHANGES_MAX) this.#changes.shift()
  }

  #recordAnchor (a: Anchor): void {
    let list = this.#anchors.get(a.node)
    if (list === undefined) {
      if (this.#anchors.size >= ANCHORED_NODES_MAX) this.#anchors.delete(this.#anchors.keys().next().value!)
      this.#anchors.set(a.node, list = [])
    }
    list.push(a)
    if (list.length > ANCHORS_PER_NODE_MAX) list.shift()
  }

  #isMember (root: string): boolean {
    return this.#config.orgs.some((o) => o.root === root)
  }

  #result (seq: number, position: number, outcome: Outcome, reason: string): Uint8Array {
    return encodeResult({ epoch: this.#config.epoch, seq, position, outcome, reason })
  }

  /** The digest a checkpoint at seq certifies: of the state after it (kept, so a replay gets the same). */
  #checkpointDigest (seq: number): Uint8Array {
    const core = this.exportCore()
    const digest = sha256(core)
    this.#lastCheckpoint = { instance: this.#instance, seq, core }
    this.#digests.set(seq, digest)
    if (this.#digests.size > DIGESTS_MAX) this.#digests.delete(this.#digests.keys().next().value!)
    return digest
  }

  // ---- state transfer: the part every org computes alike ----

  /**
   * What a result depends on (members, votes, executed clients, recent results), identical bytes in
   * every correct org at one seq: its digest is what a PBFT checkpoint certifies, and an org behind
   * the stable checkpoint installs another org's copy once it hashes to that digest.
   */
  exportCore (): Uint8Array {
    return encodeCanonical(this.#coreRows())
  }

  /** Installs a core proven by a stable checkpoint of this instance (the caller checked its digest). */
  installCore (instance: string, bytes: Uint8Array): void {
    const bad = (what: string): never => { throw new FederationStateError('federation-state-malformed', `bad transferred state: ${what}`) }
    const v = decodeCanonical(bytes, () => new FederationStateError('federation-state-malformed', 'undecodable transferred state'))
    if (!Array.isArray(v) || (v.length !== CORE_FIELDS && v.length !== CORE_FIELDS_V1)) return bad('shape')
    const next = new FederationState(decodeConfig(v[0]))
    next.#decodeCore(v, v.length, bad)
    if (next.#instance !== instance) return bad('the state belongs to another epoch')
    if (next.#lastSeq < this.#lastSeq && this.#instance === instance) return
    // A core of an epoch this org already left (an old instance's late fetch) would take it back in time.
    if (next.#config.epoch < this.#config.epoch) return
    this.#config = next.#config
    this.#instance = next.#instance
    this.#lastSeq = next.#lastSeq
    this.#votes = next.#votes
    this.#executed = next.#executed
    this.#recent = next.#recent
    this.#open = next.#open
    this.#finished = next.#finished
    if (next.#lastSeq === 0) this.#epochStart = bytes
    this.#digests = new Map([[next.#lastSeq, sha256(bytes)]])
  }

  #coreRows (): unknown[] {
    return [
      encodeConfig(this.#config), this.#lastSeq,
      [...this.#votes].map(([key, roots]) => [key, [...roots]]),
      [...this.#executed],
      [...this.#recent],
      [...this.#open].map(([ref, t]) => [ref, t.target, t.claimer]),
      [...this.#finished]
    ]
  }

  /** The core's rows at the start of v (coreFields of them: CORE_FIELDS, or CORE_FIELDS_V1 from an older node). */
  #decodeCore (v: unknown[], coreFields: number, bad: (what: string) => never): void {
    const [, lastSeq, votes, executed, recent, open, finished] = v
    if (!isCount(lastSeq)) return bad('lastSeq')
    this.#lastSeq = lastSeq
    for (const [key, roots] of rows(votes, 2, PROPOSALS_MAX, bad)) {
      if (typeof key !== 'string' || !Array.isArray(roots) || !roots.every((r) => typeof r === 'string' && KEY_HEX.test(r))) return bad('vote')
      this.#votes.set(key, new Set(roots as string[]))
    }
    this.#executed = executedClients(executed, bad)
    for (const [seq, results] of rows(recent, 2, RECENT_BATCHES_MAX, bad)) {
      if (!isCount(seq) || !Array.isArray(results) || !results.every((r) => r instanceof Uint8Array)) return bad('recent batch')
      this.#recent.set(seq, results as Uint8Array[])
    }
    for (const [ref, target, claimer] of rows(open, 3, OPEN_TASKS_MAX, bad)) {
      if (typeof ref !== 'string' || !(target === null || (typeof target === 'string' && KEY_HEX.test(target))) || !(claimer === null || (typeof claimer === 'string' && KEY_HEX.test(claimer)))) return bad('open task')
      this.#open.set(ref, { target, claimer })
    }
    for (const [ref, status] of coreFields === CORE_FIELDS ? rows(finished, 2, FINISHED_TASKS_MAX, bad) : []) {
      if (typeof ref !== 'string' || (status !== 'done' && status !== 'failed')) return bad('finished task')
      this.#finished.set(ref, status)
    }
  }

  // ---- snapshot (part of the org state machine's) ----

  encode (): unknown[] {
    return [
      ...this.#coreRows(),
      [...this.#digests],
      this.#epochStart,
      [...this.#anchors.values()].flat().map((a) => [a.node, a.root, a.auditSeq, a.head, a.epoch, a.seq]),
      this.#changes.map((c) => [c.action, c.org.name, c.org.root, c.epoch, c.seq]),
      this.#closing === undefined ? null : [this.#closing.instance, this.#closing.seq, this.#closing.results, this.#closing.digest]
    ]
  }

  static decode (v: unknown): FederationState {
    const bad = (what: string): never => { throw new FederationStateError('federation-state-malformed', `bad federation state: ${what}`) }
    if (!Array.isArray(v) || (v.length !== CORE_FIELDS + 5 && v.length !== CORE_FIELDS_V1 + 5)) return bad('shape')
    const [digests, epochStart, anchors, changes, closing] = v.slice(v.length - 5) as unknown[]
    const config = v[0]
    const s = new FederationState(decodeConfig(config))
    s.#decodeCore(v, v.length - 5, bad)
    if (!(epochStart instanceof Uint8Array) || epochStart.length > CORE_BYTES_MAX) return bad('epoch start')
    s.#epochStart = epochStart
    for (const [seq, digest] of rows(digests, 2, DIGESTS_MAX, bad)) {
      if (!isCount(seq) || !(digest instanceof Uint8Array) || digest.length !== 32) return bad('digest')
      s.#digests.set(seq, digest)
    }
    for (const [node, root, auditSeq, head, epoch, seq] of rows(anchors, 6, ANCHORED_NODES_MAX * ANCHORS_PER_NODE_MAX, bad)) {
      if (typeof node !== 'string' || typeof root !== 'string' || !isCount(auditSeq) || typeof head !== 'string' || !isCount(epoch) || !isCount(seq)) return bad('anchor')
      s.#recordAnchor({ node, root, auditSeq, head, epoch, seq })
    }
    for (const [action, name, root, epoch, seq] of rows(changes, 5, CHANGES_MAX, bad)) {
      if ((action !== 'admit' && action !== 'revoke') || typeof name !== 'string' || typeof root !== 'string' || !isCount(epoch) || !isCount(seq)) return bad('change')
      s.#changes.push({ action, org: { name, root }, epoch, seq })
    }
    if (closing !== null) {
      // Snapshots from before the closing digest hold 3 fields: theirs is the marker of a left instance.
      const row = Array.isArray(closing) && closing.length === 3 ? [...closing, undefined] : closing
      const [instance, seq, results, digest] = rows([row], 4, 1, bad)[0]!
      if (typeof instance !== 'string' || !isCount(seq) || !Array.isArray(results) || !results.every((r) => r instanceof Uint8Array) ||
        !(digest === undefined || (digest instanceof Uint8Array && digest.length === 32))) return bad('closing batch')
      s.#closing = { instance, seq, results: results as Uint8Array[], digest: digest ?? leftInstanceDigest(instance, seq) }
    }
    return s
  }
}

/** What a checkpoint of an instance this org left certifies when it knows nothing of its end. */
function leftInstanceDigest (instance: string, seq: number): Uint8Array {
  return sha256(encodeCanonical(['fedmesh/federation-left/v1', instance, seq]))
}

function executedClients (v: unknown, bad: (what: string) => never): Map<string, Uint8Array> {
  const executed = new Map<string, Uint8Array>()
  for (const [client, result] of rows(v, 2, EXECUTED_CLIENTS_MAX, bad)) {
    if (typeof client !== 'string' || !(result instanceof Uint8Array)) return bad('executed client')
    executed.set(client, result)
  }
  return executed
}

function rows (v: unknown, width: number, countMax: number, bad: (what: string) => never): unknown[][] {
  if (!Array.isArray(v) || v.length > countMax || !v.every((r) => Array.isArray(r) && r.length === width)) return bad('rows')
  return v as unknown[][]
}

// ---- wire: the org command's fields ----

export function encodeFederationBatch (b: FederationBatch): unknown[] {
  return [encodeConfig(b.config), b.instance, b.seq, b.requests.map((r) => [r.client, r.timestamp, r.op]), b.checkpoint === true]
}

export function decodeFederationBatch (v: unknown[]): FederationBatch {
  const [config, instance, seq, requests, checkpoint] = v
  if (v.length !== 5 || typeof checkpoint !== 'boolean' || typeof instance !== 'string' || !GENESIS_ID.test(instance) || !isCount(seq) || seq < 1 || !Array.isArray(requests)) {
    throw new FederationStateError('federation-batch-malformed', 'a batch holds [config, instance, seq >= 1, requests]')
  }
  return {
    config: decodeConfig(config),
    instance,
    seq,
    requests: requests.map((r: unknown) => {
      if (!Array.isArray(r) || r.length !== 3 || typeof r[0] !== 'string' || r[0].length === 0 || r[0].length > PBFT_ID_LENGTH_MAX || !isCount(r[1]) ||
        !(r[2] instanceof Uint8Array) || r[2].length > PBFT_OP_BYTES_MAX) throw new FederationStateError('federation-batch-malformed', 'bad request in batch')
      return { client: r[0], timestamp: r[1], op: r[2] }
    }),
    checkpoint
  }
}

function isCount (x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0
}

/** A state transfer into an org's state: the core of `instance` another org exported (digest checked by the host). */
export interface FederationInstall { config: FederationConfig, instance: string, core: Uint8Array }

export function encodeFederationInstall (i: FederationInstall): unknown[] {
  return [encodeConfig(i.config), i.instance, i.core]
}

export function decodeFederationInstall (v: unknown[]): FederationInstall {
  const [config, instance, core] = v
  if (v.length !== 3 || typeof instance !== 'string' || !GENESIS_ID.test(instance) || !(core instanceof Uint8Array) || core.length > CORE_BYTES_MAX) {
    throw new FederationStateError('federation-batch-malformed', 'an install holds [config, instance, core]')
  }
  return { config: decodeConfig(config), instance, core }
}

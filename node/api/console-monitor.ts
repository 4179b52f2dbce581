import type { Clock } from '../../base/clock.js'
import type { Logger } from '../../base/log.js'
import type { PeerTrust } from '../../membership/trust.js'
import type { RaftNodeStatus } from '../../consensus/raft/driver.js'
import type { AuditHead, AuditVerifyResult } from '../gate/audit.js'
import type { FederationStatus } from '../federation/federation.js'

// What the web console shows over time, kept by the node so that a page opened late still sees
// the last minutes: a sample per second of every peer's trust score, the org's Raft commit and
// applied index and the hosted PBFT replica's view and executed sequence, and the view changes
// seen. Everything is bounded. The audit log is verified whole only while someone looks (a
// console request asks), one verification at a time, at most every VERIFY_INTERVAL_MS and only
// when the log grew since: a large log costs seconds of CPU to verify.

export const SAMPLE_INTERVAL_MS = 1000
export const SAMPLES_MAX = 600
/** Per sample: the lowest-scored peers (the ones to watch; the trust book sorts them first). */
export const SAMPLE_PEERS_MAX = 32
export const VIEW_CHANGES_MAX = 20
export const VERIFY_INTERVAL_MS = 30_000

export interface ConsoleSample {
  tMs: number
  trust: Record<string, number>
  commit: number
  applied: number
  /** Present while this node hosts its org's PBFT replica. */
  view?: number
  executed?: number
}

export interface ViewChangeSeen { atMs: number, from: number, to: number, primary: string }

export type AuditVerification =
  | { state: 'not-run' }
  | { state: 'running', sinceMs: number }
  | { state: 'done', atMs: number, durationMs: number, head: AuditHead, result: AuditVerifyResult }
  /** The verification itself failed to run (a storage error): retried after VERIFY_INTERVAL_MS. */
  | { state: 'error', atMs: number, message: string }

/** What the monitor reads of the node. */
export interface MonitoredNode {
  trust(): PeerTrust[]
  raftStatus(): RaftNodeStatus
  /** undefined when the data dir holds no federation genesis. */
  federationStatus(): FederationStatus | undefined
  readonly auditLog: { readonly head: AuditHead, verify(): Promise<AuditVerifyResult> }
}

export class ConsoleMonitor {
  readonly #node: MonitoredNode
  readonly #clock: Clock
  readonly #logger: Logger
  readonly #samples: ConsoleSample[] = []
  readonly #viewChanges: ViewChangeSeen[] = []
  #lastView: number | undefined
  #verification: AuditVerification = { state: 'not-run' }

  constructor (init: { node: MonitoredNode, clock: Clock, logger: Logger }) {
    this.#node = init.node
    this.#clock = init.clock
    this.#logger = init.logger
  }

  /** Samples every SAMPLE_INTERVAL_MS from now on; returns the stop. */
  start (): () => void {
    this.sample()
    return this.#clock.every(SAMPLE_INTERVAL_MS, () => this.sample())
  }

  sample (): void {
    const nowMs = this.#clock.wallMs()
    const trust: Record<string, number> = {}
    for (const peer of this.#node.trust().slice(0, SAMPLE_PEERS_MAX)) trust[peer.peer] = round(peer.score)
    const raft = this.#node.raftStatus()
    const pbft = this.#node.federationStatus()?.pbft
    this.#push(this.#samples, { tMs: nowMs, trust, commit: raft.commit, applied: raft.applied, ...(pbft !== undefined ? { view: pbft.view, executed: pbft.lastExecuted } : {}) }, SAMPLES_MAX)
    if (pbft !== undefined && this.#lastView !== undefined && pbft.view !== this.#lastView) {
      this.#push(this.#viewChanges, { atMs: nowMs, from: this.#lastView, to: pbft.view, primary: pbft.primary }, VIEW_CHANGES_MAX)
    }
    this.#lastView = pbft?.view
  }

  /** Samples taken after sinceMs, oldest first. */
  samples (sinceMs = 0): ConsoleSample[] {
    return this.#samples.filter((s) => s.tMs > sinceMs)
  }

  /** The view changes of the replica hosted here, newest last. */
  viewChanges (): ViewChangeSeen[] {
    return [...this.#viewChanges]
  }

  /** The last verification of the audit log; starts one in the background when one is due. */
  verification (): AuditVerification {
    const v = this.#verification
    const head = this.#node.auditLog.head
    const due = v.state === 'not-run' ||
      (v.state !== 'running' && this.#clock.wallMs() - v.atMs >= VERIFY_INTERVAL_MS && (v.state === 'error' || v.head.seq !== head.seq))
    if (due) void this.#verify(head)
    return this.#verification
  }

  async #verify (head: AuditHead): Promise<void> {
    const sinceMs = this.#clock.wallMs()
    const startedMs = this.#clock.monotonicMs()
    this.#verification = { state: 'running', sinceMs }
    try {
      const result = await this.#node.auditLog.verify()
      // Entries appended while it ran are checked too: the result names the head it reached.
      const reached = result.ok ? { seq: result.count, hash: result.headHash } : head
      this.#verification = { state: 'done', atMs: this.#clock.wallMs(), durationMs: Math.round(this.#clock.monotonicMs() - startedMs), head: reached, result }
    } catch (err) {
      this.#logger.warn({ err: (err as Error).message }, 'console: audit verification failed to run')
      this.#verification = { state: 'error', atMs: this.#clock.wallMs(), message: (err as Error).message }
    }
  }

  #push<T> (list: T[], item: T, max: number): void {
    list.push(item)
    if (list.length > max) list.splice(0, list.length - max)
  }
}

function round (score: number): number {
  return Math.round(score * 10_000) / 10_000
}

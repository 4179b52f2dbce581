import type { RaftLogView } from '../consensus/raft/driver.js'
import type { Role } from '../consensus/raft/raft.js'
import type { Entry } from '../consensus/types.js'

// Cluster-wide Raft safety properties (Raft paper, Figure 3), checked by the simulator after every
// tick against every live node: a failure names the invariant and carries enough detail to debug.

export class InvariantViolation extends Error {
  constructor (readonly invariant: string, readonly detail: string) {
    super(`${invariant}: ${detail}`)
    this.name = 'InvariantViolation'
  }
}

/** The invariant a thrown error breaks: a checker's, an assertion in a core, or the simulation's own crash. */
export function describeFailure (err: unknown): { invariant: string, message: string } {
  if (err instanceof InvariantViolation) return { invariant: err.invariant, message: err.detail }
  const e = err as Error
  if (e.name === 'AssertionError') return { invariant: 'core assertion', message: e.message }
  return { invariant: 'crash', message: `${e.message}\n${e.stack ?? ''}` }
}

interface CommittedEntry { term: number, data: string, observedTerm: number }

/** What the checkers read of one live node: its driver's status and its core's log. */
export interface RaftNodeView { id: string, role: Role, term: number, log: RaftLogView }

export class RaftCheckers {
  readonly #leaderOfTerm = new Map<number, string>()
  readonly #applied = new Map<number, CommittedEntry>()
  readonly #completenessChecked = new Set<number>()
  /**
   * Per pair of nodes, the highest index up to which their logs last matched, and the entries there:
   * while both logs still hold those very entries, nothing below them changed (a log is only cut
   * from an index on, or replaced by a snapshot), so the next check stops there.
   */
  readonly #matched = new Map<string, { index: number, a: Entry, b: Entry }>()
  elections = 0

  /** Election safety: at most one leader per term. */
  checkElectionSafety (nodes: RaftNodeView[]): void {
    for (const s of nodes) {
      if (s.role !== 'leader') continue
      const known = this.#leaderOfTerm.get(s.term)
      if (known === undefined) {
        this.#leaderOfTerm.set(s.term, s.id)
        this.elections++
      } else if (known !== s.id) {
        throw new InvariantViolation('election safety', `term ${s.term} has leaders ${known} and ${s.id}`)
      }
    }
  }

  /** State machine safety: no two nodes apply different entries at one index. */
  recordApplied (node: string, e: Entry, clusterTermMax: number): void {
    const data = Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength).toString('hex')
    const known = this.#applied.get(e.index)
    if (known === undefined) {
      this.#applied.set(e.index, { term: e.term, data, observedTerm: clusterTermMax })
    } else if (known.term !== e.term || known.data !== data) {
      throw new InvariantViolation('state machine safety', `${node} applied (${e.index}, term ${e.term}) but another node applied term ${known.term} there`)
    }
  }

  /** Log matching: if two logs hold an entry with the same index and term, they agree up to it. */
  checkLogMatching (nodes: RaftNodeView[]): void {
    for (let i = 0; i < nodes.length; i++) {
      for (let j = i + 1; j < nodes.length; j++) this.#logsMatch(nodes[i]!, nodes[j]!)
    }
  }

  /**
   * Leader completeness: a leader holds every entry committed before its term began. Checked once,
   * when the leader of a term first appears (a leader only appends in its own term afterwards).
   */
  checkLeaderCompleteness (nodes: RaftNodeView[]): void {
    for (const s of nodes) {
      if (s.role !== 'leader' || this.#completenessChecked.has(s.term)) continue
      this.#completenessChecked.add(s.term)
      for (const [index, c] of this.#applied) {
        if (s.term <= c.observedTerm || index <= s.log.snapshot().meta.index) continue
        const term = s.log.term(index)
        if (term !== c.term) {
          throw new InvariantViolation('leader completeness', `leader ${s.id} of term ${s.term} has term ${term} at committed index ${index} (term ${c.term})`)
        }
      }
    }
  }

  #logsMatch (a: RaftNodeView, b: RaftNodeView): void {
    const low = Math.max(a.log.firstIndex(), b.log.firstIndex())
    let index = Math.min(a.log.lastIndex(), b.log.lastIndex())
    while (index >= low && a.log.term(index) !== b.log.term(index)) index--
    if (index < low) return
    const pair = `${a.id}\u0000${b.id}`
    const known = this.#matched.get(pair)
    this.#matched.set(pair, { index, a: a.log.entry(index)!, b: b.log.entry(index)! })
    for (; index >= low; index--) {
      const ea = a.log.entry(index)!
      const eb = b.log.entry(index)!
      if (known?.index === index && known.a === ea && known.b === eb) return
      if (ea.term !== eb.term || Buffer.compare(ea.data, eb.data) !== 0) {
        throw new InvariantViolation('log matching', `${a.id} and ${b.id} share a later entry but differ at ${index}`)
      }
    }
  }
}

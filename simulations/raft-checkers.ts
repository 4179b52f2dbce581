import type { RaftCore } from '../consensus/raft/raft.js'
import type { Entry } from '../consensus/types.js'

// Cluster-wide Raft safety properties (Raft paper, Figure 3), checked by the simulator after every
// tick against every live core: a failure names the invariant and carries enough detail to debug.

export class InvariantViolation extends Error {
  constructor (readonly invariant: string, readonly detail: string) {
    super(`${invariant}: ${detail}`)
    this.name = 'InvariantViolation'
  }
}

interface CommittedEntry { term: number, data: string, observedTerm: number }

export class RaftCheckers {
  readonly #leaderOfTerm = new Map<number, string>()
  readonly #applied = new Map<number, CommittedEntry>()
  readonly #completenessChecked = new Set<number>()
  elections = 0

  /** Election safety: at most one leader per term. */
  checkElectionSafety (cores: RaftCore[]): void {
    for (const core of cores) {
      const s = core.status()
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
    const data = Buffer.from(e.data).toString('hex')
    const known = this.#applied.get(e.index)
    if (known === undefined) {
      this.#applied.set(e.index, { term: e.term, data, observedTerm: clusterTermMax })
    } else if (known.term !== e.term || known.data !== data) {
      throw new InvariantViolation('state machine safety', `${node} applied (${e.index}, term ${e.term}) but another node applied term ${known.term} there`)
    }
  }

  /** Log matching: if two logs hold an entry with the same index and term, they agree up to it. */
  checkLogMatching (cores: RaftCore[]): void {
    for (let i = 0; i < cores.length; i++) {
      for (let j = i + 1; j < cores.length; j++) logsMatch(cores[i]!, cores[j]!)
    }
  }

  /**
   * Leader completeness: a leader holds every entry committed before its term began. Checked once,
   * when the leader of a term first appears (a leader only appends in its own term afterwards).
   */
  checkLeaderCompleteness (cores: RaftCore[]): void {
    for (const core of cores) {
      const s = core.status()
      if (s.role !== 'leader' || this.#completenessChecked.has(s.term)) continue
      this.#completenessChecked.add(s.term)
      for (const [index, c] of this.#applied) {
        if (s.term <= c.observedTerm || index <= core.storage.snapshot().meta.index) continue
        const term = core.storage.term(index)
        if (term !== c.term) {
          throw new InvariantViolation('leader completeness', `leader ${s.id} of term ${s.term} has term ${term} at committed index ${index} (term ${c.term})`)
        }
      }
    }
  }
}

function logsMatch (a: RaftCore, b: RaftCore): void {
  const low = Math.max(a.storage.firstIndex(), b.storage.firstIndex())
  let index = Math.min(a.storage.lastIndex(), b.storage.lastIndex())
  while (index >= low && a.storage.term(index) !== b.storage.term(index)) index--
  for (; index >= low; index--) {
    const ea = a.storage.entry(index)!
    const eb = b.storage.entry(index)!
    if (ea.term !== eb.term || Buffer.compare(ea.data, eb.data) !== 0) {
      throw new InvariantViolation('log matching', `${a.id} and ${b.id} share a later entry but differ at ${index}`)
    }
  }
}

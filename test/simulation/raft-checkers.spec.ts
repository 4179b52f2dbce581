import assert from 'node:assert/strict'
import { RaftStorage, emptySnapshot } from '../../consensus/raft/raft-storage.js'
import type { Entry } from '../../consensus/types.js'
import { InvariantViolation, RaftCheckers, type RaftNodeView } from '../../simulations/raft-checkers.js'

const entry = (index: number, term: number, data: number): Entry => ({ index, term, type: 'normal', data: Uint8Array.of(data) })
const log = (...entries: Entry[]): RaftStorage => {
  const storage = new RaftStorage({ hardState: { term: 1, vote: '', commit: 0 }, snapshot: emptySnapshot({ voters: [], learners: [] }), entries: [] })
  storage.append(entries)
  return storage
}
const view = (id: string, storage: RaftStorage): RaftNodeView => ({ id, role: 'follower', term: 1, log: storage })

describe('raft checkers: log matching', () => {
  it('checks again below where two logs last matched once one of them was cut and rewritten', () => {
    const checkers = new RaftCheckers()
    const a = view('a', log(entry(1, 1, 1), entry(2, 1, 2), entry(3, 1, 3)))
    const b = view('b', log(entry(1, 1, 1), entry(2, 1, 2), entry(3, 1, 3)))
    checkers.checkLogMatching([a, b])
    // What log matching forbids: the same (index, term) at the top, another entry below it.
    b.log = log(entry(1, 1, 1), entry(2, 1, 9), entry(3, 1, 3))
    assert.throws(() => checkers.checkLogMatching([a, b]), (err: unknown) => err instanceof InvariantViolation && err.invariant === 'log matching')
    const c = view('c', log(entry(1, 1, 1), entry(2, 1, 2), entry(3, 1, 3)))
    checkers.checkLogMatching([a, c])
    ;(c.log as RaftStorage).append([entry(2, 1, 7)])
    assert.throws(() => checkers.checkLogMatching([a, c]), (err: unknown) => err instanceof InvariantViolation && err.invariant === 'log matching')
  })
})

import assert from 'node:assert/strict'
import { RaftCore, RaftStorage, decodeConfChange, encodeConfChange, forceNewGroup } from '../../../consensus/raft/index.js'
import { Prng } from '../../../simulations/world/prng.js'

// Disaster recovery: a survivor of a group that lost its quorum becomes the only voter from its own log.
describe('raft: forcing a new group on one survivor (etcd --force-new-cluster)', () => {
  const CONTEXT = new Uint8Array([1])

  /** b's log: the bootstrap conf {a}, learners b and c promoted, two entries of term 3, the last one never committed. */
  function survivorLog (): RaftStorage {
    const storage = RaftStorage.bootstrap({ voters: ['a'], learners: [] })
    const conf = (index: number, type: 'add-learner' | 'promote', node: string) => ({ term: 2, index, type: 'conf' as const, data: encodeConfChange({ type, node }) })
    storage.append([conf(2, 'add-learner', 'b'), conf(3, 'add-learner', 'c'), conf(4, 'promote', 'b'), conf(5, 'promote', 'c'),
      { term: 3, index: 6, type: 'normal', data: new TextEncoder().encode('x') }, { term: 3, index: 7, type: 'normal', data: new TextEncoder().encode('y') }])
    storage.hardState = { term: 3, vote: 'a', commit: 6 }
    return storage
  }

  it('commits its whole log, removes everyone else in a new term, and then leads alone', () => {
    const storage = survivorLog()
    const forced = forceNewGroup(storage, 'b', CONTEXT)!
    assert.deepEqual(forced.removed, ['a', 'c'])
    assert.deepEqual(forced.entries.map((e) => [e.index, e.term, decodeConfChange(e.data)]), [
      [8, 4, { type: 'remove', node: 'a', context: CONTEXT }],
      [9, 4, { type: 'remove', node: 'c', context: CONTEXT }]
    ])
    assert.deepEqual(forced.hardState, { term: 4, vote: '', commit: 9 })
    const core = new RaftCore({ id: 'b', rng: new Prng(1), storage })
    assert.deepEqual(core.status().conf, { voters: ['b'], learners: [] })
    core.campaign()
    assert.equal(core.status().role, 'leader')
    const rd = core.ready()
    assert.deepEqual(rd.committedEntries.map((e) => e.index), [2, 3, 4, 5, 6, 7, 8, 9, 10], 'the uncommitted y and the leader no-op apply too')
    assert.equal(forceNewGroup(storage, 'b', CONTEXT), undefined, 'nothing to do once it is the only member')
  })

  it('makes a learner (or a node the group had removed) the only voter', () => {
    const storage = survivorLog()
    storage.append([{ term: 3, index: 8, type: 'conf', data: encodeConfChange({ type: 'remove', node: 'c' }) }])
    const forced = forceNewGroup(storage, 'c', CONTEXT)!
    assert.deepEqual(forced.entries.map((e) => decodeConfChange(e.data).type), ['add-learner', 'promote', 'remove', 'remove'])
    assert.deepEqual(new RaftCore({ id: 'c', rng: new Prng(1), storage }).status().conf, { voters: ['c'], learners: [] })
  })
})

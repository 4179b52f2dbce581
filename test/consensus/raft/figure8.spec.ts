import assert from 'node:assert/strict'
import type { RaftConfig } from '../../../consensus/raft/index.js'
import { TestNetwork } from './harness.js'

// The Raft paper's Figure 8, scripted: an entry from an older term reaches a majority under a new
// leader, who must not count it as committed; a later leader may then legitimately overwrite it.
// With the current-term commit rule disabled, s1 commits and applies it, and the other nodes later
// apply a different entry at the same index: a state machine safety violation.

function figure8 (unsafe: RaftConfig['unsafe']): TestNetwork {
  const net = new TestNetwork(['s1', 's2', 's3', 's4', 's5'], { preVote: false, checkQuorum: false, appendEntriesMax: 1, ...(unsafe === undefined ? {} : { unsafe }) })
  net.core('s1').campaign()
  net.stabilize()
  assert.deepEqual(net.leaders(), ['s1'])
  // (a) s1 (term 2) replicates A at index 3 to s2 only.
  for (const id of ['s3', 's4', 's5']) net.isolate(id)
  net.propose('s1', 'A')
  // (b) s5 wins term 3 with s3 and s4; its own entry at index 3 goes nowhere.
  net.recover()
  net.isolate('s1')
  net.isolate('s2')
  net.ignore('MsgApp')
  net.core('s5').campaign()
  net.stabilize()
  assert.equal(net.core('s5').status().role, 'leader')
  assert.equal(net.core('s5').storage.term(3), 3)
  // (c) s1 restarts, wins term 4 with s3 and s4, and replicates A there, but not its term-4 entry
  // (nor, yet, its commit index).
  net.recover()
  net.isolate('s5')
  net.isolate('s2')
  net.node('s1').restart()
  net.hook = (m) => m.type === 'MsgApp' || m.type === 'MsgHeartbeat'
    ? { ...m, entries: m.entries.filter((e) => e.term < 4), commit: Math.min(m.commit, 2) }
    : m
  net.core('s1').campaign()
  net.stabilize()
  net.core('s1').campaign()
  net.stabilize()
  assert.equal(net.core('s1').status().role, 'leader')
  assert.equal(net.core('s3').storage.term(3), 2, 'A reached a majority: s1, s3, s4')
  // (d) s1 crashes; s5 wins term 5 with s2, s3, s4 (its last term 3 beats their 2) and overwrites A.
  net.hook = undefined
  net.recover()
  net.isolate('s1')
  net.node('s5').restart()
  net.core('s5').campaign()
  net.stabilize()
  net.core('s5').campaign()
  net.stabilize()
  net.tick(3)
  return net
}

describe('raft: Figure 8 (commit only by counting current-term entries)', () => {
  it('the safe core never commits the old-term entry, so the overwrite is harmless', () => {
    const net = figure8(undefined)
    assert.deepEqual(net.appliedConflicts(), [])
    assert.deepEqual(net.leaders().filter((id) => id !== 's1'), ['s5'])
    for (const n of net.nodes.values()) assert.ok(!n.applied.includes('A'), `${n.id} applied an entry that was later overwritten`)
    for (const id of ['s2', 's3', 's4']) assert.equal(net.core(id).storage.term(3), 3)
  })

  it('a core that counts old-term entries commits A, which is then overwritten elsewhere', () => {
    const net = figure8({ commitOldTermEntries: true })
    assert.ok(net.node('s1').applied.includes('A'), 's1 applied A')
    assert.deepEqual(net.appliedConflicts(), ['s2', 's3', 's4', 's5'].map((id) => `index 3: s1 applied term 2, ${id} term 3`))
  })
})

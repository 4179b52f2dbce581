import assert from 'node:assert/strict'
import { TestNetwork } from './harness.js'

describe('raft: elections', () => {
  it('elects exactly one leader that every follower follows', () => {
    const net = new TestNetwork(['a', 'b', 'c'])
    const leader = net.electLeader()
    const term = net.core(leader).status().term
    for (const n of net.nodes.values()) {
      assert.equal(n.core.status().lead, leader)
      assert.equal(n.core.status().term, term)
    }
  })

  it('pre-vote: a partitioned node that rejoins does not disrupt the leader', () => {
    const net = new TestNetwork(['a', 'b', 'c'])
    const leader = net.electLeader()
    const term = net.core(leader).status().term
    const outsider = ['a', 'b', 'c'].find((id) => id !== leader)!
    net.isolate(outsider)
    net.tick(100)
    assert.equal(net.core(outsider).status().term, term, 'pre-votes never increment the term')
    net.recover()
    net.tick(30)
    assert.deepEqual(net.leaders(), [leader])
    assert.equal(net.core(leader).status().term, term)
  })

  it('without pre-vote the same partition forces a new election (the disruption pre-vote prevents)', () => {
    const net = new TestNetwork(['a', 'b', 'c'], { preVote: false, checkQuorum: false })
    const leader = net.electLeader()
    const term = net.core(leader).status().term
    const outsider = ['a', 'b', 'c'].find((id) => id !== leader)!
    net.isolate(outsider)
    net.tick(100)
    assert.ok(net.core(outsider).status().term > term)
    net.recover()
    net.tick(30)
    assert.ok(net.core(net.electLeader()).status().term > term)
  })

  it('check-quorum: a leader cut off from the majority steps down, and the majority moves on', () => {
    const net = new TestNetwork(['a', 'b', 'c', 'd', 'e'])
    const leader = net.electLeader()
    const term = net.core(leader).status().term
    net.isolate(leader)
    net.tick(40)
    assert.notEqual(net.core(leader).status().role, 'leader')
    const others = net.leaders()
    assert.equal(others.length, 1)
    assert.notEqual(others[0], leader)
    assert.ok(net.core(others[0]!).status().term > term)
  })

  it('leadership transfer hands over to a caught-up follower', () => {
    const net = new TestNetwork(['a', 'b', 'c'])
    const leader = net.electLeader()
    const target = ['a', 'b', 'c'].find((id) => id !== leader)!
    net.propose(leader, 'x')
    assert.ok(net.core(leader).transferLeadership(target))
    net.stabilize()
    assert.deepEqual(net.leaders(), [target])
    assert.equal(net.delivered.filter((m) => m.type === 'MsgTimeoutNow').length, 1)
    net.propose(target, 'y')
    net.tick(2)
    for (const n of net.nodes.values()) assert.deepEqual(n.applied, ['x', 'y'])
  })

  it('a leader refuses proposals while transferring', () => {
    const net = new TestNetwork(['a', 'b', 'c'])
    const leader = net.electLeader()
    const target = ['a', 'b', 'c'].find((id) => id !== leader)!
    net.isolate(target)
    assert.ok(net.core(leader).transferLeadership(target))
    assert.deepEqual(net.core(leader).propose(new Uint8Array([1])), { ok: false, reason: 'not-leader' })
    net.tick(25) // the transfer times out after an election timeout
    assert.deepEqual(net.core(leader).propose(new Uint8Array([1])), { ok: true })
  })
})

import assert from 'node:assert/strict'
import { type NewView, type PbftMessage, type Signed, batchDigest, sign } from '../../../consensus/pbft/index.js'
import { TestNetwork, identityFor } from './harness.js'

describe('pbft: view change', () => {
  it('a silent primary is replaced: backups time out, 2f+1 view changes, the new primary orders the request', () => {
    const net = new TestNetwork(4)
    net.isolate('org1')
    net.request('org2', 'alice', 1, 'a1')
    net.tick(12)
    const org2 = net.core('org2').status()
    assert.equal(org2.view, 1)
    assert.equal(org2.primary, 'org2')
    assert.equal(org2.active, true)
    for (const id of ['org2', 'org3', 'org4']) assert.deepEqual(net.replica(id).applied, ['a1'], `${id} applied`)
    assert.ok(net.delivered.some((m) => m.body.type === 'NewView' && m.from === 'org2'))
    assert.ok(net.accepted('alice', 1) !== undefined)
  })

  it('a request committed in view 0 survives the view change at the same sequence number', () => {
    const net = new TestNetwork(4)
    net.request('org1', 'alice', 1, 'a1')
    net.tick()
    // org1 pre-prepares seq 2, everyone prepares, but view-0 commits to org4 are lost: org2 and
    // org3 commit-local, org4 only prepared (nor does it get their commit certificates). Then org1 falls silent.
    net.hook = (m, to) => ((m.body.type === 'Commit' && m.body.view === 0) || m.body.type === 'Committed') && to === 'org4' ? undefined : m
    net.request('org1', 'bob', 1, 'b1')
    net.tick()
    assert.deepEqual(net.replica('org2').applied, ['a1', 'b1'])
    assert.deepEqual(net.replica('org4').applied, ['a1'])
    net.isolate('org1')
    net.request('org4', 'carol', 1, 'c1')
    net.tick(15)
    for (const id of ['org2', 'org3', 'org4']) {
      assert.equal(net.core(id).status().view, 1)
      assert.deepEqual(net.replica(id).applied, ['a1', 'b1', 'c1'], `${id} keeps b1 at seq 2`)
    }
    const seq2 = net.replica('org4').committed.find((b) => b.seq === 2)!
    assert.equal(seq2.view, 1, 'org4 committed seq 2 in the new view, from the prepared certificate')
  })

  it('backs off exponentially while no new view arrives', () => {
    const net = new TestNetwork(4, { requestTimeoutTicks: 4 })
    net.isolate('org2')
    net.request('org2', 'alice', 1, 'a1') // org2 alone waits, suspects org1, then every next primary
    const changedAt: number[] = []
    for (let t = 1; t <= 70; t++) {
      const view = net.core('org2').status().view
      net.tick()
      if (net.core('org2').status().view !== view) changedAt.push(t)
    }
    const gaps = changedAt.map((t, i) => t - (changedAt[i - 1] ?? 0))
    assert.deepEqual(gaps, [4, 4, 8, 16, 32], 'request timeout T; then T, 2T, 4T, 8T for each NewView that never comes')
  })

  it('rejects a NewView whose pre-prepares are not the ones its view changes imply', () => {
    const net = new TestNetwork(4)
    const lostCommits = (m: PbftMessage, to: string): boolean => ((m.body.type === 'Commit' && m.body.view === 0) || m.body.type === 'Committed') && to !== 'org2'
    net.hook = (m, to) => (lostCommits(m, to) ? undefined : m)
    net.request('org1', 'alice', 1, 'a1') // prepared everywhere, committed only at org2
    net.tick()
    // org2, the next primary, is faulty: it drops alice's request from O and puts a null request there.
    const org2 = identityFor('org2')
    net.hook = (m, to) => {
      if (lostCommits(m, to)) return undefined
      if (m.body.type !== 'NewView' || m.from !== 'org2') return m
      const nv = m as Signed<NewView>
      const prePrepares = nv.body.prePrepares.map((pp) => sign(org2, 'org2', { ...pp.body, batch: [], digest: batchDigest([]) }))
      return sign(org2, 'org2', { ...nv.body, prePrepares })
    }
    net.isolate('org1')
    net.request('org3', 'bob', 1, 'b1')
    net.tick(12)
    for (const id of ['org3', 'org4']) {
      const s = net.core(id).status()
      assert.ok((s.rejected['invalid-new-view'] ?? 0) >= 1, `${id} rejected the forged NewView`)
      assert.ok(!(s.view === 1 && s.active), `${id} did not enter view 1`)
      assert.deepEqual(net.replica(id).committed.filter((b) => b.seq === 1 && b.requests.length === 0), [], `${id} never committed the null request at seq 1`)
    }
    // View 2's primary (org3) is correct: alice's request keeps seq 1 and bob's follows.
    net.hook = undefined
    net.tick(40)
    for (const id of ['org3', 'org4']) {
      assert.ok(net.core(id).status().view >= 2)
      assert.deepEqual(net.replica(id).applied, ['a1', 'b1'], `${id}`)
    }
  })

  it('a lagging replica that asks for an old view receives the current NewView', () => {
    const net = new TestNetwork(4)
    net.isolate('org1')
    net.request('org2', 'alice', 1, 'a1')
    net.tick(10)
    assert.equal(net.core('org2').status().view, 1)
    // org1 comes back still in view 0; its own timeout makes it ask for view 1, and it is told.
    net.recover()
    net.request('org1', 'bob', 1, 'b1')
    net.tick(25)
    assert.equal(net.core('org1').status().view, net.core('org2').status().view)
    assert.deepEqual(net.replica('org1').applied.slice(-1), ['b1'])
  })

  it('restarts from its persisted promises without contradicting them', () => {
    const net = new TestNetwork(4)
    net.request('org1', 'alice', 1, 'a1')
    net.tick()
    const org3 = net.replica('org3')
    const before = org3.promises.filter((m: PbftMessage) => m.from === 'org3').map((m) => m.body.type)
    assert.deepEqual(before, ['Prepare', 'Commit'])
    org3.restart()
    assert.equal(org3.core.status().lastExecuted, 1)
    net.request('org1', 'bob', 1, 'b1')
    net.tick(2)
    assert.deepEqual(org3.applied, ['a1', 'b1'])
    assert.deepEqual([...net.replicas.values()].flatMap((r) => r.evidence), [], 'no replica saw a contradiction')
  })
})

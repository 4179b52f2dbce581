import assert from 'node:assert/strict'
import { type NewView, type PbftConfig, type PbftMessage, type Signed, faultsTolerated, quorumSize, sign } from '../../../consensus/pbft/index.js'
import { TestNetwork, identityFor } from './harness.js'

// Quorums for any federation size: with n = 5 (f = 1) two sets of 2f+1 = 3 replicas share only one,
// which may be the faulty one, so every certificate takes q = ceil((n+f+1)/2) = 4 there.

/** n = 5: org2 hears only the `kept` replicas' votes of type `type` for view 0 (its own always counts). */
function fiveOrgsHearing (type: 'Prepare' | 'Commit', kept: readonly string[], unsafe?: PbftConfig['unsafe']): { net: TestNetwork, withheld: PbftMessage[] } {
  const net = new TestNetwork(5, unsafe === undefined ? {} : { unsafe })
  const withheld: PbftMessage[] = []
  net.hook = (m, to) => {
    if (to !== 'org2' || m.body.type !== type || kept.includes(m.from)) return m
    withheld.push(m)
    return undefined
  }
  net.request('org1', 'alice', 1, 'a1')
  net.tick()
  return { net, withheld }
}

describe('pbft: quorums for any n', () => {
  it('q = ceil((n+f+1)/2): 2f+1 when n = 3f+1, two quorums share a correct replica, the correct replicas form one', () => {
    assert.deepEqual([4, 5, 6, 7, 8, 9, 10].map(quorumSize), [3, 4, 4, 5, 6, 6, 7])
    for (let n = 4; n <= 64; n++) {
      const f = faultsTolerated(n)
      const q = quorumSize(n)
      assert.ok(2 * q - n >= f + 1, `n=${n}: quorums share ${2 * q - n} replicas`)
      assert.ok(q <= n - f, `n=${n}: a quorum of ${q} needs a faulty replica`)
      if (n === 3 * f + 1) assert.equal(q, 2 * f + 1)
    }
  })

  it('n = 5: 3 commits (2f+1) leave a slot uncommitted; the 4th commits it', () => {
    const { net, withheld } = fiveOrgsHearing('Commit', ['org1', 'org3'])
    for (const id of ['org1', 'org3', 'org4', 'org5']) assert.deepEqual(net.replica(id).applied, ['a1'], `${id} heard every commit`)
    const org2 = net.replica('org2')
    assert.deepEqual(org2.applied, [], 'org1, org3 and its own commit are not a quorum')
    assert.equal(org2.core.status().lastExecuted, 0)
    net.hook = undefined
    net.inject('org2', withheld.find((m) => m.from === 'org4')!)
    assert.deepEqual(org2.applied, ['a1'])
  })

  it('n = 5: the old 2f+1 rule (a test-only bug) commits on those same 3 commits', () => {
    const { net } = fiveOrgsHearing('Commit', ['org1', 'org3'], { quorum2fPlus1: true })
    assert.deepEqual(net.replica('org2').applied, ['a1'])
  })

  it('n = 5: the pre-prepare and 2 prepares (2f) are no prepared certificate; a 3rd prepare is', () => {
    const { net, withheld } = fiveOrgsHearing('Prepare', ['org3'])
    const ownCommits = (): number => net.replica('org2').promises.filter((m) => m.from === 'org2' && m.body.type === 'Commit').length
    assert.equal(ownCommits(), 0, 'org2 did not commit on its own and org3\'s prepare')
    net.hook = undefined
    net.inject('org2', withheld.find((m) => m.from === 'org4')!)
    assert.equal(ownCommits(), 1)
    assert.deepEqual(net.replica('org2').applied, ['a1'])
  })

  it('n = 5: 3 view changes do not make a NewView, and a NewView carrying 3 is rejected', () => {
    const net = new TestNetwork(5)
    // org1 (primary of view 0) and org5 are cut off: org2, org3 and org4 alone vote for view 1.
    net.isolate('org1')
    net.isolate('org5')
    net.request('org2', 'alice', 1, 'a1')
    net.tick(15)
    assert.equal(net.delivered.filter((m) => m.body.type === 'NewView').length, 0, 'org2 sent no NewView on 3 view changes')
    for (const id of ['org2', 'org3', 'org4']) assert.equal(net.core(id).status().active, false)

    // org5 comes back and the next primary (org3, view 2) hears 4 view changes, but a faulty org3
    // strips one from its NewView before sending it.
    net.recover()
    net.isolate('org1')
    const stripped: Array<Signed<NewView>> = []
    net.hook = (m) => {
      if (m.body.type !== 'NewView') return m
      const nv = m as Signed<NewView>
      assert.equal(nv.body.viewChanges.length, 4)
      const sent = sign(identityFor(m.from), m.from, { ...nv.body, viewChanges: nv.body.viewChanges.slice(0, 3) })
      stripped.push(sent)
      return sent
    }
    net.tick(15)
    assert.ok(stripped.length > 0, 'no NewView was sent')
    const { from, body: { view } } = stripped[0]!
    for (const id of ['org2', 'org3', 'org4', 'org5'].filter((r) => r !== from)) {
      const s = net.core(id).status()
      assert.ok((s.rejected['invalid-new-view'] ?? 0) >= 1, `${id} rejected the NewView with 3 view changes`)
      assert.ok(!(s.view === view && s.active), `${id} did not enter view ${view}`)
      assert.deepEqual(net.replica(id).applied, [], `${id} executed nothing`)
    }
    // Unaltered NewViews (org2's own, or a later primary's) are accepted and alice's request runs.
    net.hook = undefined
    net.tick(80)
    for (const id of ['org2', 'org3', 'org4', 'org5']) assert.deepEqual(net.replica(id).applied, ['a1'], `${id}`)
  })
})

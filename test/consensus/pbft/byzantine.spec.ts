import assert from 'node:assert/strict'
import { type PrePrepare, type Signed, batchDigest, sign } from '../../../consensus/pbft/index.js'
import { TestNetwork, identityFor, requestOf } from './harness.js'

describe('pbft: Byzantine replicas', () => {
  it('an equivocating primary (different batches to different replicas) cannot commit both, and is caught with evidence', () => {
    const net = new TestNetwork(4)
    const org1 = identityFor('org1')
    // org1 sends org4 a pre-prepare for another batch at the same (view, seq).
    net.hook = (m, to) => {
      if (m.body.type !== 'PrePrepare' || m.from !== 'org1' || to !== 'org4') return m
      const batch = [requestOf('mallory', 1, 'evil')]
      return sign(org1, 'org1', { ...m.body, batch, digest: batchDigest(batch) })
    }
    net.request('org1', 'alice', 1, 'a1')
    net.tick()
    // org2 and org3 prepare alice's batch (2f = 2 prepares) and commit it with org1; org4's lone
    // prepare for the other batch never becomes a certificate.
    for (const id of ['org2', 'org3']) assert.deepEqual(net.replica(id).applied, ['a1'])
    assert.deepEqual(net.replica('org4').applied, [], 'org4 never commits the batch only it was shown')
    // Replaying the forged pre-prepare (validly signed by org1) to org2 yields evidence against org1.
    const forged = net.delivered.find((m): m is Signed<PrePrepare> => m.body.type === 'PrePrepare' && m.body.batch[0]?.client === 'mallory')!
    net.inject('org2', forged)
    const evidence = net.replica('org2').evidence
    assert.equal(evidence.length, 1)
    assert.equal(evidence[0]!.replica, 'org1')
    assert.notDeepEqual(evidence[0]!.first.body, evidence[0]!.second.body)
    assert.deepEqual(net.replica('org2').applied, ['a1'], 'evidence changes nothing already committed')
  })

  it('two conflicting prepares from one backup are evidence; its votes cannot form a second certificate', () => {
    const net = new TestNetwork(4)
    const org4 = identityFor('org4')
    net.hook = (m, to) => {
      if (m.body.type !== 'Prepare' || m.from !== 'org4' || to !== 'org3') return m
      return sign(org4, 'org4', { ...m.body, digest: batchDigest([requestOf('mallory', 1, 'x')]) })
    }
    net.request('org1', 'alice', 1, 'a1')
    net.tick()
    // The conflicting prepare cannot stop alice's request: org1, org2 and org3 are enough.
    for (const id of ['org1', 'org2', 'org3']) assert.deepEqual(net.replica(id).applied, ['a1'])
    const fromOrg4 = net.delivered.filter((m) => m.body.type === 'Prepare' && m.from === 'org4' && m.body.seq === 1)
    const digests = new Set(fromOrg4.map((m) => m.body.type === 'Prepare' ? Buffer.from(m.body.digest).toString('hex') : ''))
    assert.equal(digests.size, 2, 'org4 sent two different prepares for (view 0, seq 1)')
    // org3 only got the conflicting one; shown the other, it has proof.
    net.hook = undefined
    net.inject('org3', fromOrg4.find((m) => m.body.type === 'Prepare' && Buffer.compare(m.body.digest, batchDigest([requestOf('alice', 1, 'a1')])) === 0)!)
    const evidence = net.replica('org3').evidence
    assert.equal(evidence.length, 1)
    assert.equal(evidence[0]!.replica, 'org4')
    assert.deepEqual(net.replica('org3').applied, ['a1'])
  })

  it('forged messages (signed with the wrong key) are rejected; replayed ones change nothing', () => {
    const net = new TestNetwork(4)
    net.request('org1', 'alice', 1, 'a1')
    net.tick()
    // org4 signs a commit claiming to be org1.
    const forged = sign(identityFor('org4'), 'org1', { type: 'Commit', view: 0, seq: 2, digest: batchDigest([]) })
    net.inject('org2', forged)
    assert.equal(net.core('org2').status().rejected['bad-signature'], 1)
    // Replays of everything delivered so far, to every replica: no new execution, no evidence.
    const replay = [...net.delivered]
    for (const m of replay) for (const id of net.ids) if (id !== m.from) net.inject(id, m)
    net.tick(3)
    for (const r of net.replicas.values()) {
      assert.deepEqual(r.applied, ['a1'])
      assert.deepEqual(r.evidence, [])
    }
  })

  it('a replica sending view changes with a forged prepared certificate is ignored', () => {
    const net = new TestNetwork(4)
    const org4 = identityFor('org4')
    const batch = [requestOf('mallory', 1, 'evil')]
    const pp = sign(org4, 'org1', { type: 'PrePrepare', view: 0, seq: 1, digest: batchDigest(batch), batch })
    const prepares = ['org2', 'org3'].map((id) => sign(org4, id, { type: 'Prepare', view: 0, seq: 1, digest: batchDigest(batch) }))
    const vc = sign(org4, 'org4', { type: 'ViewChange', view: 1, stableSeq: 0, checkpointProof: [], prepared: [{ prePrepare: pp, prepares }] })
    for (const id of ['org1', 'org2', 'org3']) net.inject(id, vc)
    for (const id of ['org1', 'org2', 'org3']) {
      assert.equal(net.core(id).status().rejected['invalid-view-change'], 1)
      assert.equal(net.core(id).status().view, 0)
    }
  })

  it('a view change for a view absurdly far ahead is refused, so nobody is dragged there', () => {
    const net = new TestNetwork(4)
    const vc = sign(identityFor('org4'), 'org4', { type: 'ViewChange', view: 2 ** 50, stableSeq: 0, checkpointProof: [], prepared: [] })
    for (const id of ['org1', 'org2', 'org3']) net.inject(id, vc)
    net.isolate('org1')
    net.request('org2', 'alice', 1, 'a1')
    net.tick(15)
    for (const id of ['org2', 'org3']) {
      assert.equal(net.core(id).status().rejected['view-too-far-ahead'], 1)
      assert.equal(net.core(id).status().view, 1, `${id} moved to the next view only`)
    }
  })
})

import assert from 'node:assert/strict'
import {
  type Commit, type Committed, type PbftMessage, type PrePrepare, type Signed, batchDigest, sign
} from '../../../consensus/pbft/index.js'
import { TestNetwork, identityFor, requestOf } from './harness.js'

// A replica that missed pre-prepares (a new org leader restored behind the others, a lossy link)
// says where it is (Status) and executes the commit certificates its peers answer with (Committed),
// whatever its own view: no view change, and nothing else it could contradict.

const OPTIONS = { batchMax: 1, checkpointInterval: 8, logWindow: 16 }

const sent = (net: TestNetwork, type: string, from: string, after = 0): PbftMessage[] =>
  net.delivered.slice(after).filter((m) => m.body.type === type && m.from === from)

describe('pbft: catching up from commit certificates', () => {
  it('a replica that missed the pre-prepares of 5 seqs executes them from two peers\' answers, in its view', () => {
    const net = new TestNetwork(4, OPTIONS)
    // org4 never gets a pre-prepare, and org1's answers to its Status are lost too: org2 and org3 answer.
    net.hook = (m, to) => (to === 'org4' && m.body.type === 'PrePrepare') || (to === 'org1' && m.body.type === 'Status') ? undefined : m
    for (let i = 1; i <= 5; i++) net.request('org1', `c${i}`, 1, `op${i}`)
    assert.equal(net.core('org1').status().lastExecuted, 5)
    assert.equal(net.core('org4').status().lastExecuted, 0)
    net.tick(6) // half the request timeout: org4 still waits for the requests it was sent, so it asks
    const org4 = net.core('org4').status()
    assert.equal(org4.lastExecuted, 5)
    assert.equal(org4.caughtUp, 5)
    assert.deepEqual([org4.view, org4.active, org4.viewChanges], [0, true, 0], 'no view change')
    assert.deepEqual(net.replica('org4').applied, net.replica('org1').applied)
    assert.deepEqual(net.replica('org4').committed, net.replica('org1').committed, 'the same batches, digests and views in Ready.committed')
    const answered = new Set(net.delivered.filter((m) => m.body.type === 'Committed').map((m) => m.from))
    assert.deepEqual([...answered].sort(), ['org2', 'org3'])
    assert.equal(org4.pendingRequests, 0)
    assert.deepEqual([...net.replicas.values()].flatMap((r) => r.evidence), [])
  })

  it('a replica alone in a later view executes committed batches from certificates and keeps its view', () => {
    const net = new TestNetwork(4, OPTIONS)
    net.isolate('org4')
    net.request('org4', 'dave', 1, 'd1') // only org4 knows it: it waits, and times out alone
    net.request('org1', 'alice', 1, 'a1')
    net.request('org1', 'bob', 1, 'b1')
    net.tick(10)
    assert.deepEqual([net.core('org4').status().view, net.core('org4').status().active], [1, false])
    net.recover()
    const recovered = net.delivered.length
    net.tick(5)
    let org4 = net.core('org4').status()
    assert.equal(org4.lastExecuted, 2)
    assert.deepEqual([org4.view, org4.active], [1, false], 'certificates move no view')
    assert.deepEqual(net.replica('org4').applied, ['a1', 'b1'])
    // The others go on in view 0; org4 keeps learning their batches without voting in a view it left.
    net.request('org1', 'carol', 1, 'c1')
    net.tick(10)
    org4 = net.core('org4').status()
    assert.equal(org4.active, false)
    assert.ok(org4.view >= 1)
    assert.deepEqual(net.replica('org4').applied, ['a1', 'b1', 'c1'])
    assert.deepEqual(net.replica('org4').committed, net.replica('org1').committed)
    for (const type of ['Prepare', 'Commit', 'PrePrepare']) assert.deepEqual(sent(net, type, 'org4', recovered), [], `org4 sent no ${type}`)
    for (const id of ['org1', 'org2', 'org3']) assert.deepEqual([net.core(id).status().view, net.core(id).status().active], [0, true])
  })

  it('rejects and counts forged or short certificates, then executes the real one', () => {
    const net = new TestNetwork(4, OPTIONS)
    net.isolate('org4')
    net.request('org1', 'alice', 1, 'a1')
    const pp = net.delivered.find((m) => m.body.type === 'PrePrepare' && m.body.seq === 1) as Signed<PrePrepare>
    const commits = ['org1', 'org2', 'org3'].map((id) => net.delivered.find((m) => m.body.type === 'Commit' && m.from === id) as Signed<Commit>)
    assert.ok(pp !== undefined && commits.every((c) => c !== undefined))
    const org1 = identityFor('org1')
    const org2 = identityFor('org2')
    const other = [requestOf('mallory', 1, 'm1')]
    const ppOther = sign(org1, 'org1', { ...pp.body, batch: other, digest: batchDigest(other) })
    const certificates: Array<Omit<Committed, 'type'>> = [
      { prePrepare: pp, commits: commits.slice(0, 2) }, // q-1 commits
      { prePrepare: ppOther, commits }, // commits for another digest
      { prePrepare: sign(org1, 'org1', { ...pp.body, batch: other }), commits }, // digest is not the batch's
      { prePrepare: sign(org2, 'org2', pp.body), commits }, // not from view 0's primary
      { prePrepare: pp, commits: [commits[0]!, commits[1]!, commits[1]!] }, // a signer twice
      { prePrepare: pp, commits: [commits[0]!, commits[1]!, sign(org2, 'org3', commits[2]!.body)] } // a forged signature
    ]
    for (const c of certificates) net.inject('org4', sign(org2, 'org2', { ...c, type: 'Committed' }))
    let org4 = net.core('org4').status()
    assert.equal(org4.rejected['invalid-certificate'], certificates.length)
    assert.deepEqual([org4.lastExecuted, org4.caughtUp], [0, 0])
    net.inject('org4', sign(org2, 'org2', { type: 'Committed', prePrepare: pp, commits }))
    org4 = net.core('org4').status()
    assert.deepEqual([org4.lastExecuted, org4.caughtUp], [1, 1])
    assert.deepEqual(net.replica('org4').applied, ['a1'])
    assert.equal(org4.rejected['invalid-certificate'], certificates.length)
  })

  it('answers a replica\'s Status at most once a quarter timeout: no amplification', () => {
    const net = new TestNetwork(4, OPTIONS)
    for (let i = 1; i <= 3; i++) net.request('org1', `c${i}`, 1, `op${i}`)
    const org4 = identityFor('org4')
    const before = net.delivered.length
    for (let i = 0; i < 5; i++) net.inject('org1', sign(org4, 'org4', { type: 'Status', view: 0, lastExecuted: 0 }))
    assert.equal(sent(net, 'Committed', 'org1', before).length, 3, 'one certificate a missing seq, once')
    assert.equal(net.core('org1').status().rejected['status-rate-limited'], 4)
    net.tick(3)
    const again = net.delivered.length
    net.inject('org1', sign(org4, 'org4', { type: 'Status', view: 0, lastExecuted: 0 }))
    assert.equal(sent(net, 'Committed', 'org1', again).length, 3, 'answered again a quarter timeout later')
  })
})

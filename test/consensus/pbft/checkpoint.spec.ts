import assert from 'node:assert/strict'
import { TestNetwork } from './harness.js'

describe('pbft: checkpoints and garbage collection', () => {
  it('every K = 4 sequence numbers 2f+1 matching checkpoints become stable and move the watermarks', () => {
    const net = new TestNetwork(4)
    for (let i = 1; i <= 9; i++) {
      net.request('org1', 'alice', i, `a${i}`)
      net.tick()
    }
    for (const r of net.replicas.values()) {
      const s = r.core.status()
      assert.equal(s.lastExecuted, 9)
      assert.equal(s.lowWatermark, 8, `${r.id} stable checkpoint`)
      assert.equal(s.highWatermark, 16)
    }
    const checkpoints = net.delivered.filter((m) => m.body.type === 'Checkpoint')
    assert.deepEqual([...new Set(checkpoints.map((m) => m.body.type === 'Checkpoint' && m.body.seq))], [4, 8])
  })

  it('the primary never assigns beyond the high watermark until a checkpoint is stable', () => {
    const net = new TestNetwork(4, { batchMax: 1 })
    // org4 is cut off, and org3 drops checkpoints: only 2 of the 3 needed checkpoint messages exist.
    net.isolate('org4')
    net.hook = (m) => (m.from === 'org3' && m.body.type === 'Checkpoint' ? undefined : m)
    for (let i = 1; i <= 12; i++) net.request('org1', `c${i}`, 1, `op${i}`)
    net.tick()
    const seqs = net.delivered.filter((m) => m.body.type === 'PrePrepare').map((m) => m.body.type === 'PrePrepare' ? m.body.seq : 0)
    assert.equal(Math.max(...seqs), 8, 'L = 8 sequence numbers above the low watermark 0')
    assert.equal(net.core('org1').status().lowWatermark, 0)
    // The checkpoints flow again (org3 resends them with its checkpoint heartbeat every timeout):
    // seq 4 and 8 become stable and the rest is ordered.
    net.hook = undefined
    net.tick(12)
    assert.equal(net.core('org1').status().lastExecuted, 12)
    assert.equal(net.core('org1').status().lowWatermark, 12)
  })

  it('drops messages outside the watermarks and collects the log below the stable checkpoint', () => {
    const net = new TestNetwork(4)
    for (let i = 1; i <= 4; i++) {
      net.request('org1', 'alice', i, `a${i}`)
      net.tick()
    }
    const org2 = net.replica('org2')
    // A replayed commit below the low watermark changes nothing; one far above it is rejected.
    const oldCommit = net.delivered.find((m) => m.body.type === 'Commit' && m.body.seq === 1 && m.from === 'org3')!
    net.inject('org2', oldCommit)
    assert.equal(org2.core.status().lastExecuted, 4)
    const far = net.delivered.find((m) => m.body.type === 'Prepare' && m.from === 'org3')!
    if (far.body.type !== 'Prepare') throw new Error('unreachable')
    const forged = { ...far, body: { ...far.body, seq: 100 } }
    net.inject('org2', forged)
    assert.equal(org2.core.status().rejected['bad-signature'], 1, 'a re-labelled message fails its signature')
  })

  it('a replica cut off past a stable checkpoint fetches the state and then follows again', () => {
    const net = new TestNetwork(4)
    net.isolate('org4')
    for (let i = 1; i <= 9; i++) {
      net.request('org1', 'alice', i, `a${i}`)
      net.tick()
    }
    assert.equal(net.core('org4').status().lastExecuted, 0)
    net.recover()
    net.tick(10) // the checkpoint heartbeat tells org4 that seq 8 is stable
    const org4 = net.replica('org4')
    assert.equal(org4.fetches, 1, 'state transfer at the stable checkpoint')
    assert.equal(org4.core.status().lastExecuted, 8)
    // Seq 9 went by while org4 was away; the next checkpoint brings it up to date again.
    for (let i = 10; i <= 12; i++) {
      net.request('org1', 'alice', i, `a${i}`)
      net.tick()
    }
    net.tick(10)
    assert.equal(org4.core.status().lastExecuted, 12)
    assert.deepEqual(org4.applied, net.replica('org1').applied)
  })

  it('a replica cut off for more than 4 log windows still learns the stable checkpoint and fetches the state', () => {
    const net = new TestNetwork(4)
    net.isolate('org4')
    for (let i = 1; i <= 41; i++) {
      net.request('org1', 'alice', i, `a${i}`)
      net.tick()
    }
    assert.ok(net.core('org1').status().lowWatermark > 4 * 8, 'the others moved more than 4 windows (L = 8) on')
    net.recover()
    net.tick(10)
    const org4 = net.replica('org4')
    assert.equal(org4.fetches, 1, 'state transfer at the far stable checkpoint')
    assert.equal(org4.core.status().lastExecuted, net.core('org1').status().lowWatermark)
  })
})

import assert from 'node:assert/strict'
import { decode } from 'cborg'
import { PbftRequestError } from '../../../consensus/pbft/index.js'
import { TestNetwork } from './harness.js'

describe('pbft: normal case', () => {
  it('a request at a backup is forwarded, pre-prepared, prepared, committed and executed in order on every replica', () => {
    const net = new TestNetwork(4)
    assert.equal(net.core('org1').status().primary, 'org1')
    net.request('org3', 'alice', 1, 'a1')
    net.tick()
    for (const r of net.replicas.values()) {
      assert.deepEqual(r.applied, ['a1'], `${r.id} applied`)
      assert.equal(r.core.status().lastExecuted, 1)
    }
    const types = net.delivered.map((m) => m.body.type)
    assert.ok(types.includes('Request') && types.includes('PrePrepare') && types.includes('Prepare') && types.includes('Commit'))
    // Every replica replies; the client accepts once f+1 = 2 agree.
    assert.equal(net.replies.get('alice')?.length, 4)
    assert.equal(decode(net.accepted('alice', 1)!), 1)
  })

  it('a request the client sent to every replica itself is not relayed among them (relay: false), and still executes everywhere', () => {
    // The federation gossips each request to every node: replicas relaying it again cost n−1 signed messages each.
    const net = new TestNetwork(4, { proposeWhenIdle: true })
    for (const id of net.ids) net.request(id, 'alice', 1, 'a1', { relay: false })
    net.tick()
    assert.equal(net.delivered.filter((m) => m.body.type === 'Request').length, 0)
    for (const r of net.replicas.values()) assert.deepEqual(r.applied, ['a1'])
    // The default relays, so that a request a client could hand to one replica only reaches all of them.
    const relaying = new TestNetwork(4, { proposeWhenIdle: true })
    relaying.request('org2', 'bob', 1, 'b1')
    assert.equal(relaying.delivered.filter((m) => m.body.type === 'Request').length, 3)
  })

  it('batches requests that arrive between ticks into one pre-prepare', () => {
    const net = new TestNetwork(4)
    for (let i = 1; i <= 5; i++) net.request('org1', `c${i}`, 1, `op${i}`)
    net.tick()
    const prePrepares = net.delivered.filter((m) => m.body.type === 'PrePrepare')
    assert.equal(new Set(prePrepares.map((m) => m.body.type === 'PrePrepare' && m.body.seq)).size, 1)
    for (const r of net.replicas.values()) assert.deepEqual(r.applied, ['op1', 'op2', 'op3', 'op4', 'op5'])
  })

  it('with proposeWhenIdle the primary orders a lone request at once, without waiting for a tick', () => {
    const net = new TestNetwork(4, { proposeWhenIdle: true })
    net.request('org1', 'alice', 1, 'now')
    for (const r of net.replicas.values()) assert.deepEqual(r.applied, ['now'])
    const lazy = new TestNetwork(4)
    lazy.request('org1', 'alice', 1, 'later')
    assert.deepEqual(lazy.replica('org2').applied, [], 'by default the request waits for the tick')
    lazy.tick()
    assert.deepEqual(lazy.replica('org2').applied, ['later'])
  })

  it('works with 7 organisations (f = 2)', () => {
    const net = new TestNetwork(7)
    assert.equal(net.core('org1').f, 2)
    net.request('org5', 'bob', 1, 'b1')
    net.tick()
    for (const r of net.replicas.values()) assert.deepEqual(r.applied, ['b1'])
    assert.ok(net.accepted('bob', 1) !== undefined)
  })

  it('suppresses duplicates: a retried request is answered from the reply cache and executed once', () => {
    const net = new TestNetwork(4)
    net.request('org2', 'alice', 1, 'a1')
    net.tick()
    const before = net.delivered.filter((m) => m.body.type === 'PrePrepare').length
    // The client did not hear enough replies and retries at every replica.
    for (const id of net.ids) net.request(id, 'alice', 1, 'a1')
    net.tick(3)
    assert.equal(net.delivered.filter((m) => m.body.type === 'PrePrepare').length, before, 'the retry was not ordered again')
    for (const r of net.replicas.values()) assert.deepEqual(r.applied, ['a1'])
    assert.equal(net.replies.get('alice')?.length, 8, 'each replica answered the retry from its cache')
    // An older request from the same client is stale: ignored, never executed.
    net.request('org1', 'alice', 0, 'old')
    net.tick(3)
    for (const r of net.replicas.values()) assert.deepEqual(r.applied, ['a1'])
  })

  it('refuses requests that could never be ordered, and configurations whose view change could not be sent', () => {
    const net = new TestNetwork(4, { batchBytesMax: 2048 })
    const core = net.core('org2')
    assert.throws(() => core.propose(new Uint8Array(4096), { client: 'alice', seq: 1 }), (err: unknown) => err instanceof PbftRequestError && err.code === 'pbft-request-too-large')
    assert.throws(() => core.propose(new Uint8Array(1), { client: '', seq: 1 }), (err: unknown) => err instanceof PbftRequestError && err.code === 'pbft-request-malformed')
    assert.throws(() => new TestNetwork(4, { logWindow: 1024, checkpointInterval: 4, batchBytesMax: 64 * 1024 }), /exceed/)
  })

  it('a full request queue says so', () => {
    const net = new TestNetwork(4, { pendingRequestsMax: 2 })
    const core = net.core('org2')
    assert.deepEqual(core.propose(new Uint8Array(1), { client: 'a', seq: 1 }), { ok: true })
    assert.deepEqual(core.propose(new Uint8Array(1), { client: 'b', seq: 1 }), { ok: true })
    assert.deepEqual(core.propose(new Uint8Array(1), { client: 'c', seq: 1 }), { ok: false, reason: 'queue-full' })
  })
})

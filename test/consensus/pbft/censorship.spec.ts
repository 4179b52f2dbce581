import assert from 'node:assert/strict'
import type { PbftConfig } from '../../../consensus/pbft/index.js'
import { TestNetwork } from './harness.js'

// A primary that orders every request but one: the progress timer restarts on each execution and
// never fires, so only the age of the oldest pending request can unmask it.

const TIMEOUT_TICKS = 10
/** What the victim's request may wait with nothing ahead of it: one round of batches and one timeout of slack. */
const BOUND_TICKS = 2 * TIMEOUT_TICKS

/** org1, the primary of view 0, never hears victim (a censor drops what it does not want to order). */
function censoredBy (unsafe?: PbftConfig['unsafe']): { net: TestNetwork, traffic: () => void } {
  const net = new TestNetwork(4, { batchMax: 2, requestTimeoutTicks: TIMEOUT_TICKS, ...(unsafe === undefined ? {} : { unsafe }) })
  net.hook = (m, to) => m.body.type === 'Request' && m.body.request.client === 'victim' && to === 'org1' ? undefined : m
  net.request('org2', 'victim', 1, 'v1')
  let t = 0
  // Another client's request every tick, each executed within the tick: the progress timer never fires.
  const traffic = (): void => {
    t++
    net.request(`org${2 + t % 3}`, `client${t}`, 1, `op${t}`)
    net.tick()
  }
  return { net, traffic }
}

describe('pbft: a censoring primary', () => {
  it('without the request age bound, keeps its view forever while the victim waits (the gap)', () => {
    const { net, traffic } = censoredBy({ noRequestAgeBound: true })
    for (let t = 0; t < 10 * BOUND_TICKS; t++) traffic()
    for (const id of net.ids) {
      assert.equal(net.core(id).status().viewChanges, 0, `${id} never suspected org1`)
      assert.ok(!net.replica(id).applied.includes('v1'), `${id} never executed the victim's request`)
    }
    assert.equal(net.replica('org2').applied.length, 10 * BOUND_TICKS, 'every other request executed')
  })

  it('is replaced once the oldest request outlives its bound, while other requests keep executing, and the next primary orders it', () => {
    const { net, traffic } = censoredBy()
    let ticks = 0
    for (; net.core('org2').status().view === 0 && ticks < 5 * BOUND_TICKS; ticks++) {
      // The victim retries at every replica (forwarded on to the primary): the wait does not start over.
      if (ticks === TIMEOUT_TICKS) for (const id of ['org2', 'org3', 'org4']) net.request(id, 'victim', 1, 'v1')
      traffic()
    }
    assert.ok(ticks > BOUND_TICKS && ticks <= BOUND_TICKS + 1, `suspected ${ticks} ticks after the request arrived, the bound is ${BOUND_TICKS}`)
    // Up to the view change, org1 ordered everyone else on time.
    assert.ok(net.replica('org3').applied.length >= ticks - 1, `only ${net.replica('org3').applied.length} requests executed in ${ticks} ticks`)
    const ordered = net.replica('org3').committed.find((b) => b.requests.some((r) => r.client === 'victim'))
    assert.equal(ordered?.view, 1, 'the victim\'s request was ordered by the next primary, never by org1')
    for (let t = 0; t < 2 * TIMEOUT_TICKS; t++) traffic()
    for (const id of ['org2', 'org3', 'org4']) {
      const s = net.core(id).status()
      assert.equal(s.view, 1, `${id} moved to view 1`)
      assert.equal(s.primary, 'org2')
      assert.ok(s.active)
      assert.ok(net.replica(id).applied.includes('v1'), `${id} executed the victim's request`)
    }
    assert.ok(net.accepted('victim', 1) !== undefined, 'the victim accepts f+1 matching replies')
    // The new primary orders everyone: no further view change.
    assert.equal(net.core('org3').status().viewChanges, 1)
  })

  it('a client replacing its request starts it over at the back of the queue: it cannot make a correct primary look slow', () => {
    const net = new TestNetwork(4, { batchMax: 2, requestTimeoutTicks: TIMEOUT_TICKS })
    // org1 misses every one of pushy's requests (so none is ever ordered); pushy sends a newer one each
    // timeout, keeping a request pending the whole time. Only each request's own age counts.
    net.hook = (m, to) => m.body.type === 'Request' && m.body.request.client === 'pushy' && to === 'org1' ? undefined : m
    for (let t = 1; t <= 3 * BOUND_TICKS; t++) {
      if (t % TIMEOUT_TICKS === 1) net.request('org2', 'pushy', t, `p${t}`)
      net.request('org3', `client${t}`, 1, `op${t}`)
      net.tick()
    }
    assert.equal(net.core('org2').status().viewChanges, 0, 'no request outlived its own bound')
    assert.equal(net.core('org2').status().pendingRequests, 1, 'only pushy\'s latest request waits')
    // Once pushy stops replacing it, its latest request outlives its bound like any other (the
    // others' requests still executing every tick).
    let ticks = 0
    for (; net.core('org2').status().view === 0 && ticks < 3 * BOUND_TICKS; ticks++) {
      net.request('org3', `late${ticks}`, 1, `late${ticks}`)
      net.tick()
    }
    assert.ok(ticks <= BOUND_TICKS, `suspected after ${ticks} more ticks`)
  })
})

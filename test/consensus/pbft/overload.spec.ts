import assert from 'node:assert/strict'
import type { PbftMessage } from '../../../consensus/pbft/index.js'
import { TestNetwork } from './harness.js'

// Overload: far more requests than one batch and the watermark window hold, so most of them wait in
// the queue for many timeouts. The progress timer watches for an execution, and the age bound of the
// oldest request grows with the backlog it arrived behind: a primary that keeps executing batches in
// arrival order is never suspected (not even at the slowest rate the bound assumes, half a window of
// batches per timeout), a silent one still is.

const TIMEOUT_TICKS = 10
const CLIENTS = 120

/** 4 replicas, batches of 2, a window of 8: CLIENTS requests queued at every replica, and the primary's link delivering one pre-prepare (one batch) every `ticksPerBatch`. */
function overloaded (ticksPerBatch = 1): { net: TestNetwork, tick: () => void } {
  const net = new TestNetwork(4, { batchMax: 2, requestTimeoutTicks: TIMEOUT_TICKS })
  const held: Array<{ to: string, message: PbftMessage }> = []
  const seqOf = (m: PbftMessage): number => (m.body as { seq: number }).seq
  net.hook = (m, to) => {
    if (m.body.type !== 'PrePrepare' || m.from !== 'org1') return m
    held.push({ to, message: m })
    return undefined
  }
  for (let c = 0; c < CLIENTS; c++) net.request(`org${1 + c % 4}`, `client${c}`, 1, `op${c}`)
  assert.ok(net.core('org2').status().pendingRequests > 2 * 8, 'more pending than a batch times the window')
  let ticks = 0
  const tick = (): void => {
    if (ticks++ % ticksPerBatch !== 0) return net.tick()
    const seq = Math.min(...held.map((h) => seqOf(h.message)))
    for (const h of held.filter((x) => seqOf(x.message) === seq)) {
      held.splice(held.indexOf(h), 1)
      net.inject(h.to, h.message)
    }
    net.tick()
  }
  return { net, tick }
}

describe('pbft: overload', () => {
  for (const ticksPerBatch of [1, 2]) {
    it(`a correct primary with a queue longer than the timeout keeps its view while batches keep executing (a batch every ${ticksPerBatch} ticks)`, () => {
      const { net, tick } = overloaded(ticksPerBatch)
      let ticks = 0
      for (; net.replica('org2').applied.length < CLIENTS && ticks < 40 * TIMEOUT_TICKS; ticks++) tick()
      for (const id of net.ids) {
        const s = net.core(id).status()
        assert.equal(s.view, 0, `${id} stayed in view 0`)
        assert.equal(s.viewChanges, 0, `${id} never voted for a view change`)
        assert.equal(net.replica(id).applied.length, CLIENTS, `${id} applied every request`)
      }
      assert.ok(!net.delivered.some((m) => m.body.type === 'ViewChange'))
      // The last requests waited that long: far beyond a fixed bound of a few timeouts.
      assert.ok(ticks > 3 * ticksPerBatch * TIMEOUT_TICKS, `the queue took ${ticks} ticks, several timeouts`)
    })
  }

  it('a primary that falls silent in the middle of the backlog is replaced one timeout later, and the backlog drains', () => {
    const { net, tick } = overloaded()
    for (let t = 0; t < 2 * TIMEOUT_TICKS; t++) tick()
    const executed = net.core('org2').status().lastExecuted
    assert.ok(executed > 0 && net.replica('org2').applied.length < CLIENTS, 'the primary was working through the backlog')
    net.hook = undefined
    net.isolate('org1')
    let ticks = 0
    for (; net.core('org2').status().view === 0 && ticks < 3 * TIMEOUT_TICKS; ticks++) net.tick()
    assert.ok(ticks <= TIMEOUT_TICKS + 1, `view change ${ticks} ticks after the primary fell silent`)
    net.tick(2 * TIMEOUT_TICKS)
    for (const id of ['org2', 'org3', 'org4']) {
      const s = net.core(id).status()
      assert.equal(s.view, 1, `${id} moved to view 1`)
      assert.equal(s.primary, 'org2')
      assert.equal(net.replica(id).applied.length, CLIENTS, `${id} applied every request`)
    }
  })
})

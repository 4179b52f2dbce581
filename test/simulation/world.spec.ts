import assert from 'node:assert/strict'
import { SimNetwork } from '../../simulations/world/network.js'
import { Prng } from '../../simulations/world/prng.js'
import { SimScheduler } from '../../simulations/world/scheduler.js'

// The simulated world's own rules, where the transport compliance suite does not reach.

describe('simulated world: network', () => {
  it('frees a link\'s capacity from packets to an endpoint killed while they were in flight', async () => {
    const scheduler = new SimScheduler()
    const network = new SimNetwork<number>(scheduler, new Prng(1), () => ({ latencyMs: [5, 5], dropPerMille: 0, duplicatePerMille: 0 }), 2)
    const first = scheduler.clock()
    network.attach('b', first, () => assert.fail('a killed endpoint got a packet'))
    network.send('a', 'b', 1)
    network.send('a', 'b', 2)
    first.halt()
    await scheduler.runUntil(10)
    const received: number[] = []
    network.attach('b', scheduler.clock(), (_from, packet) => received.push(packet))
    network.send('a', 'b', 3)
    await scheduler.runUntil(20)
    assert.deepEqual(received, [3])
    assert.deepEqual(network.stats, { sent: 3, delivered: 1, dropped: 2, duplicated: 0, partitions: 0 })
  })
})

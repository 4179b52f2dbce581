import assert from 'node:assert/strict'
import { bytesEqual, toHex } from '../../base/bytes.js'
import { FedmeshError } from '../../base/errors.js'
import { silentLogger } from '../../base/log.js'
import type { Transport } from '../../base/transport.js'
import { generateIdentity } from '../../node/runtime/key-file.js'
import { Libp2pTransport } from '../../node/runtime/libp2p-transport.js'
import { SimNetwork } from '../../simulations/world/network.js'
import { Prng } from '../../simulations/world/prng.js'
import { SimScheduler } from '../../simulations/world/scheduler.js'
import { type SimPacket, SimTopics, SimTransport } from '../../simulations/world/sim-transport.js'

// One suite, every implementation of Transport (as storage.spec.ts does for Storage): what the
// protocols above rely on, and nothing an implementation may do differently (gossipsub learns
// subscriptions over time, libp2p registers protocols asynchronously: the suite waits for the
// contract's outcome, in the world's own time, rather than for a number of steps).

interface TransportWorld {
  /** Three nodes, each connected to the other two. */
  transports: [Transport, Transport, Transport]
  /** Lets ms of the world's time pass: real time over sockets, simulated time in the simulator. */
  settle: (ms: number) => Promise<void>
  /** An address no node listens at. */
  unknownAddress: string
  stop: () => Promise<void>
}

const STEP_MS = 20
const WAIT_MS = 10_000
const text = (value: string): Uint8Array => new TextEncoder().encode(value)

/** Lets the world's time pass until check() holds. */
async function eventually (world: TransportWorld, what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  for (let waited = 0; !(await check()); waited += STEP_MS) {
    if (waited >= WAIT_MS) assert.fail(`no ${what} after ${WAIT_MS} ms`)
    await world.settle(STEP_MS)
  }
}

/** Awaits a call whose outcome needs the world's time to pass (a reply, a timeout). */
async function outcome<T> (world: TransportWorld, call: Promise<T>): Promise<T> {
  let settled: { value: T } | { error: unknown } | undefined
  call.then((value) => { settled = { value } }, (error: unknown) => { settled = { error } })
  await eventually(world, 'outcome', () => settled !== undefined)
  if ('error' in settled!) throw settled.error
  return settled!.value
}

const withCode = (code: string) => (err: unknown): boolean => {
  assert.ok(err instanceof FedmeshError, `a FedmeshError, got ${String(err)}`)
  assert.equal(err.code, code)
  return true
}

interface Heard { from: string, bytes: Uint8Array }

function transportCompliance (name: string, setup: () => Promise<TransportWorld>): void {
  describe(`Transport compliance: ${name}`, function () {
    this.timeout(30_000)
    let world: TransportWorld
    let a: Transport
    let b: Transport
    let c: Transport

    // A gossiped message is its content (the transport adds no author or seqno): each publish here is new bytes.
    let published = 0

    before(async () => {
      world = await setup()
      ;[a, b, c] = world.transports
    })
    after(async () => { await world.stop() })

    it('publishes to every subscriber but the publisher, with the publisher\'s key', async () => {
      const heard: Heard[][] = [[], [], []]
      const stops = world.transports.map((t, i) => t.onTopic('compliance/publish', (from, bytes) => {
        heard[i]!.push({ from: toHex(from), bytes })
        return 'accept'
      }))
      // Subscriptions reach the publisher in their own time: publish until both are known.
      await eventually(world, 'publish to both subscribers', async () => await a.publish('compliance/publish', text(`hello ${++published}`)) === 2)
      await eventually(world, 'delivery to both', () => heard[1]!.length > 0 && heard[2]!.length > 0)
      await world.settle(200)
      assert.equal(heard[0]!.length, 0, 'the publisher heard its own message')
      for (const h of [...heard[1]!, ...heard[2]!]) {
        assert.equal(h.from, toHex(a.localKey))
        assert.ok(new TextDecoder().decode(h.bytes).startsWith('hello '))
      }
      for (const stop of stops) stop()
    })

    it('hands a topic handler the key of the neighbour that delivered it: the publisher or a relay, never itself', async () => {
      const heard: Heard[] = []
      const stop = b.onTopic('compliance/sender', (from, bytes) => { heard.push({ from: toHex(from), bytes }); return 'accept' })
      await eventually(world, 'delivery from c', async () => { await c.publish('compliance/sender', text(`from c ${++published}`)); return heard.length > 0 })
      assert.ok([toHex(a.localKey), toHex(c.localKey)].includes(heard[0]!.from), 'a node of the mesh')
      stop()
    })

    it('stops delivering a topic once unsubscribed', async () => {
      const heard: Heard[] = []
      const stop = b.onTopic('compliance/unsubscribe', (from, bytes) => { heard.push({ from: toHex(from), bytes }); return 'accept' })
      await eventually(world, 'a first delivery', async () => { await a.publish('compliance/unsubscribe', text(`before ${++published}`)); return heard.length > 0 })
      stop()
      await eventually(world, 'the unsubscription to reach the publisher', async () => await a.publish('compliance/unsubscribe', text(`after ${++published}`)) === 0)
      const before = heard.length
      for (let i = 0; i < 5; i++) {
        await a.publish('compliance/unsubscribe', text(`after ${++published}`))
        await world.settle(50)
      }
      assert.equal(heard.length, before)
    })

    it('answers a request, the handler seeing the requester\'s key', async () => {
      const stop = b.onRequest('compliance/echo', async (from, bytes) => Uint8Array.from([...from, ...bytes]))
      const reply = await outcome(world, a.request(b.localKey, 'compliance/echo', text('ping')))
      assert.ok(bytesEqual(reply, Uint8Array.from([...a.localKey, ...text('ping')])))
      stop()
    })

    it('refuses a request with the handler\'s FedmeshError code, or rpc-handler-failed for any other error', async () => {
      const stops = [
        b.onRequest('compliance/refuse', async () => { throw new FedmeshError('compliance-refused', 'not today') }),
        b.onRequest('compliance/throw', () => { throw new Error('a bug') })
      ]
      await assert.rejects(outcome(world, a.request(b.localKey, 'compliance/refuse', text('x'))), withCode('compliance-refused'))
      await assert.rejects(outcome(world, a.request(b.localKey, 'compliance/throw', text('x'))), withCode('rpc-handler-failed'))
      for (const stop of stops) stop()
    })

    it('refuses a request on a channel without a handler (never registered, or unregistered) with rpc-no-handler', async () => {
      await assert.rejects(outcome(world, a.request(b.localKey, 'compliance/nobody', text('x'))), withCode('rpc-no-handler'))
      const stop = b.onRequest('compliance/gone', async () => text('here'))
      assert.ok(bytesEqual(await outcome(world, a.request(b.localKey, 'compliance/gone', text('x'))), text('here')))
      stop()
      await assert.rejects(outcome(world, a.request(b.localKey, 'compliance/gone', text('x'))), withCode('rpc-no-handler'))
    })

    it('times a request out with rpc-timeout', async () => {
      const stop = b.onRequest('compliance/silent', async () => await new Promise<Uint8Array>(() => {}))
      await assert.rejects(outcome(world, a.request(b.localKey, 'compliance/silent', text('x'), { timeoutMs: 300 })), withCode('rpc-timeout'))
      stop()
    })

    it('delivers one-way messages with the sender\'s key', async () => {
      const heard: Heard[] = []
      const stop = c.onMessage('compliance-oneway', (from, bytes) => heard.push({ from: toHex(from), bytes }))
      // Best effort: a message sent before the channel is served may be dropped, so send until one arrives.
      await eventually(world, 'a message', () => { b.send(c.localKey, 'compliance-oneway', text('one way')); return heard.length > 0 })
      assert.equal(heard[0]!.from, toHex(b.localKey))
      assert.ok(bytesEqual(heard[0]!.bytes, text('one way')))
      stop()
    })

    it('lists the other nodes as connected peers', async () => {
      for (const t of world.transports) {
        const others = world.transports.filter((o) => o !== t).map((o) => toHex(o.localKey)).sort()
        await eventually(world, 'connections', () => JSON.stringify(t.connectedPeers().map(toHex).sort()) === JSON.stringify(others))
      }
    })

    it('fails to dial an address nobody listens at', async () => {
      await assert.rejects(outcome(world, a.dial([world.unknownAddress])))
    })
  })
}

transportCompliance('Libp2pTransport (127.0.0.1)', async () => {
  const create = async (): Promise<Libp2pTransport> => await Libp2pTransport.create({ identity: generateIdentity(), listen: ['/ip4/127.0.0.1/tcp/0'], logger: silentLogger, gossipHeartbeatMs: 100 })
  const transports: [Libp2pTransport, Libp2pTransport, Libp2pTransport] = await Promise.all([create(), create(), create()])
  for (const [i, t] of transports.entries()) for (const other of transports.slice(i + 1)) await t.dial(other.multiaddrs())
  return {
    transports,
    settle: async (ms) => { await new Promise((resolve) => setTimeout(resolve, ms)) },
    // Port 1 is privileged: nothing of ours listens there, so the connection is refused.
    unknownAddress: '/ip4/127.0.0.1/tcp/1',
    stop: async () => { await Promise.all(transports.map(async (t) => await t.stop())) }
  }
})

transportCompliance('SimTransport (simulated network)', async () => {
  const scheduler = new SimScheduler()
  const network = new SimNetwork<SimPacket>(scheduler, new Prng(1), () => ({ latencyMs: [1, 10], dropPerMille: 0, duplicatePerMille: 0 }))
  const topics = new SimTopics()
  const node = (i: number): SimTransport => new SimTransport(network, topics, scheduler.clock(), new Uint8Array(32).fill(i))
  const transports: [SimTransport, SimTransport, SimTransport] = [node(1), node(2), node(3)]
  return {
    transports,
    settle: async (ms) => { await scheduler.runUntil(scheduler.nowMs + ms) },
    unknownAddress: toHex(new Uint8Array(32).fill(0xee)),
    stop: async () => { for (const t of transports) t.close() }
  }
})

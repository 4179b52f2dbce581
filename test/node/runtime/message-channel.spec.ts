import '../../../node/runtime/polyfills.js'
import assert from 'node:assert/strict'
import { toHex } from '../../../base/bytes.js'
import { Libp2pTransport } from '../../../node/runtime/libp2p-transport.js'
import { silentLogger } from '../../../base/log.js'
import { channelProtocol } from '../../../node/runtime/message-channel.js'
import { waitFor } from '../../helpers/cli-node.js'
import { generateIdentity } from '../../../node/runtime/key-file.js'

const drops = (t: Libp2pTransport, reason: string): number => t.messageDrops().find((d) => d.channel === 'test' && d.reason === reason)?.count ?? 0

describe('one-way message channels over libp2p (127.0.0.1)', function () {
  this.timeout(15_000)
  let a: Libp2pTransport
  let b: Libp2pTransport

  before(async () => {
    const create = async (): Promise<Libp2pTransport> => await Libp2pTransport.create({ identity: generateIdentity(), listen: ['/ip4/127.0.0.1/tcp/0'], logger: silentLogger })
    ;[a, b] = await Promise.all([create(), create()])
    await a.dial(b.multiaddrs())
  })

  after(async () => {
    await Promise.all([a.stop(), b.stop()])
  })

  it('delivers frames in order with the sender\'s authenticated key, on its own protocol', async () => {
    const received: Array<[string, number]> = []
    const stop = b.onMessage('test', (from, bytes) => received.push([toHex(from), bytes[0]!]))
    await waitFor('the protocol to be registered', () => b.libp2p.getProtocols().includes(channelProtocol('test')), 2_000, 10)
    for (let i = 0; i < 100; i++) a.send(b.localKey, 'test', new Uint8Array([i, 1, 2, 3]))
    await waitFor('100 frames', () => received.length === 100, 5_000, 10)
    assert.deepEqual(received.map(([, n]) => n), Array.from({ length: 100 }, (_, i) => i))
    assert.ok(received.every(([from]) => from === toHex(a.localKey)))
    stop()
  })

  it('splits coalesced writes back into the frames sent, across varint widths and the write-size bound', async () => {
    const sizes = [1, 127, 128, 300, 16_383, 16_384, 200_000, 300_000, 5, 100_000, 100_000, 100_000]
    const received: Uint8Array[] = []
    const stop = b.onMessage('test', (_from, bytes) => received.push(bytes.slice()))
    sizes.forEach((size, i) => a.send(b.localKey, 'test', new Uint8Array(size).fill(i + 1)))
    await waitFor('every frame', () => received.length === sizes.length, 5_000, 10)
    assert.deepEqual(received.map((r) => r.length), sizes)
    assert.ok(received.every((r, i) => r.every((byte) => byte === i + 1)))
    stop()
  })

  it('drops rather than blocks: oversize frames, full queues, unreachable peers and back-off are counted', async () => {
    a.send(b.localKey, 'test', new Uint8Array(16 * 1024 * 1024 + 1))
    assert.equal(drops(a, 'oversize'), 1)
    const nowhere = generateIdentity().publicKey
    for (let i = 0; i < 1100; i++) a.send(nowhere, 'test', new Uint8Array([i & 0xff]))
    assert.equal(drops(a, 'queue-full'), 1100 - 1024)
    await waitFor('the dial to fail and drop the queue', () => drops(a, 'unreachable') === 1024, 5_000, 10)
    a.send(nowhere, 'test', new Uint8Array([1]))
    assert.equal(drops(a, 'backoff'), 1)
  })

  it('rejects channel names that are not 1-32 [a-z0-9-]', () => {
    assert.throws(() => channelProtocol('Raft/../x'), RangeError)
    assert.equal(channelProtocol('raft'), '/fedmesh/raft/1.0.0')
  })
})

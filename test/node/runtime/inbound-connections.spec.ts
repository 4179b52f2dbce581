import '../../../node/runtime/polyfills.js'
import assert from 'node:assert/strict'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { silentLogger } from '../../../base/log.js'
import { Libp2pTransport } from '../../../node/runtime/libp2p-transport.js'
import { generateIdentity } from '../../../node/runtime/key-file.js'
import { waitFor } from '../../helpers/cli-node.js'

// Many nodes on one machine dial one node at once (a mesh booting together against its bootstrap
// node): libp2p's default inbound limits (5 per second per host) reset all but 5 of them.
describe('inbound connections from one host', function () {
  this.timeout(30_000)
  const DIALERS = 40
  let target: Libp2pTransport
  const dialers: Libp2p[] = []

  before(async () => {
    target = await Libp2pTransport.create({ identity: generateIdentity(), listen: ['/ip4/127.0.0.1/tcp/0'], logger: silentLogger })
    dialers.push(...await Promise.all(Array.from({ length: DIALERS }, async () =>
      await createLibp2p({ transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] }))))
  })

  after(async () => {
    await Promise.all([target.stop(), ...dialers.map(async (d) => await d.stop())])
  })

  it(`accepts ${DIALERS} simultaneous dials from 127.0.0.1`, async () => {
    const address = multiaddr(target.multiaddrs()[0]!)
    const results = await Promise.allSettled(dialers.map(async (d) => await d.dial(address)))
    const failures = results.flatMap((r) => r.status === 'rejected' ? [(r.reason as Error).message] : [])
    assert.deepEqual(failures, [], `${failures.length} of ${DIALERS} dials failed`)
    await waitFor('the target to count every connection', () => target.connectedPeers().length === DIALERS, 5_000, 20)
  })
})

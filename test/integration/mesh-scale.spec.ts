import '../../node/runtime/polyfills.js'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { FedmeshNode } from '../../node/node.js'
import { waitFor } from '../helpers/cli-node.js'

// 20 nodes on one address, 19 of them booting at once against one bootstrap node: it has 19 peers on
// 127.0.0.1. With gossipsub's default IP-colocation penalty (-5 × (19 − 10)² = -405, below the graylist
// threshold) it would ignore them all; with libp2p's default inbound limit (5 connections per second
// per host) it would reset most of their first dials (node/runtime/libp2p-transport.ts).
const NODES = 20

describe(`a mesh of ${NODES} nodes sharing one IP address, booting at once`, function () {
  this.timeout(60_000)
  let root: string
  const nodes: FedmeshNode[] = []
  const failedDials: string[] = []
  // Warnings only: the bootstrap dials that failed.
  const logger = pino({ level: 'warn' }, new Writable({
    write (chunk: Buffer, _encoding, done) {
      const line = JSON.parse(chunk.toString()) as { msg: string, err?: string }
      if (line.msg === 'bootstrap dial failed') failedDials.push(line.err ?? '')
      done()
    }
  }))

  before(async () => { root = await mkdtemp(join(tmpdir(), 'fedmesh-scale-')) })
  after(async () => {
    await Promise.all(nodes.map(async (n) => await n.stop()))
    await rm(root, { recursive: true, force: true })
  })

  it('converges: every first bootstrap dial succeeds, every node lists every node alive', async () => {
    const start = async (i: number, bootstrap: string[]): Promise<FedmeshNode> =>
      await FedmeshNode.start({ dataDir: join(root, `n${i}`), org: `n${i}`, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap, api: null, heartbeatMs: 300, logger })
    nodes.push(await start(0, []))
    nodes.push(...await Promise.all(Array.from({ length: NODES - 1 }, async (_, i) => await start(i + 1, nodes[0]!.multiaddrs()))))
    await waitFor(`${NODES} nodes to converge`, () => nodes.every((n) => n.members().filter((m) => m.status === 'alive').length === NODES), 30_000)
    assert.deepEqual(failedDials, [])
    // Stays converged: nobody is graylisted a few heartbeats later.
    await new Promise((resolve) => setTimeout(resolve, 1500))
    await waitFor('still converged', () => nodes.every((n) => n.members().filter((m) => m.status === 'alive').length === NODES), 5_000)
  })
})

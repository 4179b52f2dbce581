import '../../node/runtime/polyfills.js'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { silentLogger } from '../../base/log.js'
import { FedmeshNode } from '../../node/node.js'
import { waitFor } from '../helpers/cli-node.js'

// 16 nodes on one address: the bootstrap node has 15 peers on 127.0.0.1. With gossipsub's default
// IP-colocation penalty (-5 × (15 − 10)² = -125, below the graylist threshold) it would ignore them all.
const NODES = 16

describe(`a mesh of ${NODES} nodes sharing one IP address`, function () {
  this.timeout(60_000)
  let root: string
  const nodes: FedmeshNode[] = []

  before(async () => { root = await mkdtemp(join(tmpdir(), 'fedmesh-scale-')) })
  after(async () => {
    await Promise.all(nodes.map(async (n) => await n.stop()))
    await rm(root, { recursive: true, force: true })
  })

  it('converges: every node lists every node alive', async () => {
    const start = async (i: number, bootstrap: string[]): Promise<FedmeshNode> =>
      await FedmeshNode.start({ dataDir: join(root, `n${i}`), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap, api: null, heartbeatMs: 300, logger: silentLogger })
    nodes.push(await start(0, []))
    nodes.push(...await Promise.all(Array.from({ length: NODES - 1 }, async (_, i) => await start(i + 1, nodes[0]!.multiaddrs()))))
    await waitFor(`${NODES} nodes to converge`, () => nodes.every((n) => n.members().filter((m) => m.status === 'alive').length === NODES), 20_000)
    // Stays converged: nobody is graylisted a few heartbeats later.
    await new Promise((resolve) => setTimeout(resolve, 1500))
    await waitFor('still converged', () => nodes.every((n) => n.members().filter((m) => m.status === 'alive').length === NODES), 5_000)
  })
})

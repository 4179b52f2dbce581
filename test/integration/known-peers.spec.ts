import '../../node/runtime/polyfills.js'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFile, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { silentLogger } from '../../base/log.js'
import { FedmeshNode, type FedmeshNodeInit } from '../../node/node.js'
import { inviteToken } from '../../node/org/org-identity.js'
import { PEERS_FILE } from '../../node/runtime/bootstrap.js'
import { waitFor } from '../helpers/cli-node.js'

// A node that joined by token remembers how to find its mesh: the token's addresses and the members
// it saw, in <data-dir>/peers.json. Restarted without --bootstrap while the founder (the only node its
// token names) is down, it finds the member it learned through gossip.
describe('a restarted node finds its mesh without --bootstrap (real libp2p on 127.0.0.1)', function () {
  this.timeout(40_000)
  let root: string
  const running = new Set<FedmeshNode>()

  const start = async (name: string, init: Partial<FedmeshNodeInit> = {}): Promise<FedmeshNode> => {
    const node = await FedmeshNode.start({ dataDir: join(root, name), listen: ['/ip4/127.0.0.1/tcp/0'], api: null, heartbeatMs: 200, logger: silentLogger, ...init })
    running.add(node)
    return node
  }
  const stop = async (node: FedmeshNode): Promise<void> => {
    running.delete(node)
    await node.stop()
  }
  const sees = (node: FedmeshNode, other: FedmeshNode): boolean => node.members().some((m) => m.key === other.key && m.status === 'alive')

  before(async () => { root = await mkdtemp(join(tmpdir(), 'fedmesh-known-')) })
  after(async () => {
    await Promise.all([...running].map(async (n) => await n.stop()))
    await rm(root, { recursive: true, force: true })
  })

  it('persists the addresses it learned and dials them on start', async () => {
    const founder = await start('founder', { org: 'acme' })
    const token = async (): Promise<string> => await inviteToken(join(root, 'founder'), founder.multiaddrs(), Date.now(), new Uint8Array(randomBytes(16)))
    const joiner = await start('joiner', { join: await token() })
    const other = await start('other', { join: await token() })
    await waitFor('all three to see each other', () => [founder, joiner, other].every((a) => [founder, joiner, other].every((b) => a === b || sees(a, b))), 15_000)
    const known = async (): Promise<string[]> => (JSON.parse(await readFile(join(root, 'joiner', PEERS_FILE), 'utf8')) as { addrs: string[] }).addrs
    await waitFor('the joiner to save the other member\'s addresses', async () => (await known()).some((a) => a.endsWith(other.peerId)), 5_000)
    assert.ok((await known()).some((a) => a.endsWith(founder.peerId)), 'the token\'s addresses are kept too')
    assert.ok(!(await known()).some((a) => a.endsWith(joiner.peerId)), 'not its own')

    await stop(joiner)
    await stop(founder)
    const restarted = await start('joiner')
    await waitFor('the restarted node to find the other member', () => sees(restarted, other) && sees(other, restarted), 10_000)
  })
})

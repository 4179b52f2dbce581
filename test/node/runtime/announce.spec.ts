import '../../../node/runtime/polyfills.js'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { silentLogger } from '../../../base/log.js'
import { parseJoinToken } from '../../../base/org-certificate.js'
import { FedmeshNode } from '../../../node/node.js'
import { inviteToken } from '../../../node/org/org-identity.js'
import { readRuntime } from '../../../node/runtime/data-dir.js'

// Behind NAT or a port forward, other machines reach a node at an address it does not listen on:
// --announce makes that the address it announces, and the one its invite tokens carry.

describe('announced addresses (--announce)', () => {
  let dataDir: string
  beforeEach(async () => { dataDir = await mkdtemp(join(tmpdir(), 'fedmesh-announce-')) })
  afterEach(async () => { await rm(dataDir, { recursive: true, force: true }) })

  it('announces the given address instead of the listening one, and invites carry it', async () => {
    const announced = '/ip4/203.0.113.7/tcp/7400'
    const node = await FedmeshNode.start({ dataDir, org: 'acme', listen: ['/ip4/127.0.0.1/tcp/0'], announce: [announced], api: { host: '127.0.0.1', port: 0 }, logger: silentLogger })
    try {
      const addrs = node.multiaddrs()
      assert.ok(addrs.length > 0 && addrs.every((a) => a.startsWith(`${announced}/p2p/`)), `announced: ${addrs.join(' ')}`)
      const runtime = await readRuntime(dataDir)
      const token = await inviteToken(dataDir, runtime!.multiaddrs, Date.now(), new Uint8Array(randomBytes(16)))
      assert.deepEqual(parseJoinToken(token, Date.now()).addrs, addrs)
    } finally {
      await node.stop()
    }
  })

  it('refuses a malformed address in one line, before anything listens', async () => {
    await assert.rejects(FedmeshNode.start({ dataDir, org: 'acme', listen: ['/ip4/127.0.0.1/tcp/0'], announce: ['203.0.113.7:7400'], api: { host: '127.0.0.1', port: 0 }, logger: silentLogger }),
      /--announce '203.0.113.7:7400' is not a multiaddr/)
  })
})

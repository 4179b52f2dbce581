import '../../node/runtime/polyfills.js'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FedmeshError } from '../../base/errors.js'
import { silentLogger } from '../../base/log.js'
import { FedmeshNode, type FedmeshNodeInit } from '../../node/node.js'
import { createJoinToken } from '../../base/org-certificate.js'
import { acceptDelegation, delegateIssuing, inviteToken } from '../../node/org/org-identity.js'
import { fromHex } from '../../base/bytes.js'
import { waitFor } from '../helpers/cli-node.js'
import { generateIdentity } from '../../node/runtime/key-file.js'

/** In-process nodes on 127.0.0.1 in a fresh temp dir, stopped and removed after the suite. */
function localNodes (prefix: string, defaults: Partial<FedmeshNodeInit> = {}): { root: string, running: FedmeshNode[], start: (name: string, options?: Partial<FedmeshNodeInit>) => Promise<FedmeshNode> } {
  const nodes = {
    root: '',
    running: [] as FedmeshNode[],
    start: async (name: string, options: Partial<FedmeshNodeInit> = {}): Promise<FedmeshNode> => {
      const node = await FedmeshNode.start({ dataDir: join(nodes.root, name), listen: ['/ip4/127.0.0.1/tcp/0'], api: null, heartbeatMs: 200, logger: silentLogger, ...defaults, ...options })
      nodes.running.push(node)
      return node
    }
  }
  before(async () => { nodes.root = await mkdtemp(join(tmpdir(), prefix)) })
  after(async () => {
    for (const node of nodes.running) await node.stop()
    await rm(nodes.root, { recursive: true, force: true })
  })
  return nodes
}

describe('joining an organisation with a one-time token (real libp2p on 127.0.0.1)', function () {
  this.timeout(30_000)
  const nodes = localNodes('fedmesh-join-')

  it('founds an org, admits a newcomer with a token, and refuses the same token twice', async () => {
    const founder = await nodes.start('founder', { org: 'acme' })
    assert.equal(founder.isOrgRoot, true)
    const token = await inviteToken(join(nodes.root, 'founder'), founder.multiaddrs(), Date.now(), new Uint8Array(randomBytes(16)))
    const newcomer = await nodes.start('newcomer', { join: token })
    assert.equal(newcomer.org, 'acme')
    assert.equal(newcomer.orgRoot, founder.orgRoot)
    assert.equal(newcomer.isOrgRoot, false)
    await waitFor('the founder to see the newcomer as an org member', () => founder.orgMembers().includes(newcomer.key), 5_000)
    assert.equal(founder.members().find((m) => m.key === newcomer.key)?.root, founder.orgRoot)

    await assert.rejects(nodes.start('second', { join: token }), (err: Error) => err instanceof FedmeshError && err.code === 'token-reused')
    const audit = []
    for await (const e of founder.auditLog.tail(100)) if (e.action === 'org.join') audit.push(`${e.decision}:${e.detail.reason ?? ''}`)
    assert.deepEqual(audit, ['allow:', 'deny:token-reused'])
  })

  it('refuses a token signed by another root that claims the same org name', async () => {
    const founder = nodes.running[0]!
    const impostorRoot = generateIdentity()
    const forged = createJoinToken(impostorRoot, { org: 'acme', addrs: founder.multiaddrs(), nonce: new Uint8Array(randomBytes(16)), expiresAtMs: Date.now() + 60_000 })
    await assert.rejects(nodes.start('impostor', { join: forged }), (err: Error) => err instanceof FedmeshError && err.code === 'token-wrong-org')
  })

  it('keeps its org across restarts and refuses to switch org', async () => {
    const newcomer = nodes.running[1]!
    const dataDir = join(nodes.root, 'newcomer')
    await newcomer.stop()
    nodes.running.splice(1, 1)
    const again = await FedmeshNode.start({ dataDir, listen: ['/ip4/127.0.0.1/tcp/0'], api: null, logger: silentLogger })
    nodes.running.push(again)
    assert.equal(again.org, 'acme')
    await again.stop()
    nodes.running.pop()
    await assert.rejects(FedmeshNode.start({ dataDir, org: 'globex', listen: ['/ip4/127.0.0.1/tcp/0'], api: null, logger: silentLogger }),
      (err: Error) => err instanceof FedmeshError && err.code === 'already-in-org')
  })
})

describe('a member the founder delegated to issues invites while the founder is gone (real libp2p on 127.0.0.1)', function () {
  this.timeout(30_000)
  const nodes = localNodes('fedmesh-delegate-', { raft: { tickMs: 20, electionTicks: 10 } })

  it('admits a machine through the delegate, chained to the org root, and it becomes a voter of the org', async () => {
    const founder = await nodes.start('founder', { org: 'acme' })
    let delegate = await nodes.start('delegate', { join: await inviteToken(join(nodes.root, 'founder'), founder.multiaddrs(), Date.now(), new Uint8Array(randomBytes(16))) })
    await assert.rejects(inviteToken(join(nodes.root, 'delegate'), delegate.multiaddrs(), Date.now(), new Uint8Array(randomBytes(16))), (err: Error) => err instanceof FedmeshError && err.code === 'not-org-root')
    await acceptDelegation(join(nodes.root, 'delegate'), await delegateIssuing(join(nodes.root, 'founder'), fromHex(delegate.key), Date.now()), Date.now())
    await delegate.stop()
    nodes.running.splice(nodes.running.indexOf(delegate), 1)
    delegate = await nodes.start('delegate', { bootstrap: founder.multiaddrs() })
    await waitFor('the delegate back as a voter', () => founder.status().raft.voters.includes(delegate.key), 10_000, 20)

    assert.deepEqual(await founder.leave(), { removed: true })
    nodes.running.splice(nodes.running.indexOf(founder), 1)
    await waitFor('the delegate to lead alone', () => delegate.status().raft.role === 'leader', 10_000, 20)
    const token = await inviteToken(join(nodes.root, 'delegate'), delegate.multiaddrs(), Date.now(), new Uint8Array(randomBytes(16)))
    const newcomer = await nodes.start('newcomer', { join: token })
    assert.deepEqual([newcomer.org, newcomer.orgRoot, newcomer.isOrgRoot], ['acme', founder.orgRoot, false])
    await waitFor('the newcomer a voter of the org\'s group', () => delegate.status().raft.voters.includes(newcomer.key), 10_000, 20)
    assert.equal(delegate.members().find((m) => m.key === newcomer.key)?.root, founder.orgRoot)
    const audit = []
    for await (const e of delegate.auditLog.tail(100)) if (e.action === 'org.join') audit.push(`${e.decision}:${e.peer}`)
    assert.deepEqual(audit, [`allow:${newcomer.key}`])
  })
})

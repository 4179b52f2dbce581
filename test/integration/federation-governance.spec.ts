import '../../node/runtime/polyfills.js'
import assert from 'node:assert/strict'
import { mkdir } from 'node:fs/promises'
import type { AuditEntry } from '../../node/gate/audit.js'
import { writeEpochFile, writeGenesis } from '../../node/federation/genesis.js'
import { loadOrCreateIdentity } from '../../node/runtime/key-file.js'
import { toHex } from '../../base/bytes.js'
import { FedmeshNode } from '../../node/node.js'
import { ORG_ROOT_KEY_FILE } from '../../node/org/org-identity.js'
import { waitFor } from '../helpers/cli-node.js'
import { InProcessFederation, isFederated } from '../helpers/federation-genesis.js'

// Governance by PBFT vote, real libp2p on 127.0.0.1: three members revoke the fourth (one signed
// event: every member cuts it off; a new epoch orders tasks among the three), then admit a new org
// that joins from the exported epoch alone and takes part in ordering at once.
describe('federation governance: revoke and admit orgs by vote (real libp2p on 127.0.0.1)', function () {
  this.timeout(60_000)
  const ORGS = ['alpha', 'bravo', 'charlie', 'delta']
  let f: InProcessFederation
  const node = (name: string): FedmeshNode => f.node(name)
  const titles = async (n: FedmeshNode): Promise<string[]> =>
    (await n.tasks.list({ limit: 1000 })).filter(isFederated).map((t) => t.title)

  before(async () => { f = await InProcessFederation.start(ORGS, { federation: { anchorIntervalMs: 500 } }) })
  after(async () => { await f.stop() })

  it('revokes delta once 3 of 4 orgs approved: every member cuts it off and the federation goes on without it', async () => {
    const delta = node('delta')
    const deltaRoot = delta.orgRoot
    await node('alpha').propose({ title: 'before the vote', capability: 'ops' }, { scope: 'federation' })
    const first = await node('alpha').federation.vote({ action: 'revoke', org: 'delta' })
    assert.deepEqual([first.outcome, first.reason, first.epoch], ['approved', '1/3', 0])
    assert.equal((await node('bravo').federation.vote({ action: 'revoke', org: 'delta' })).outcome, 'approved')
    const passed = await node('charlie').federation.vote({ action: 'revoke', org: deltaRoot })
    assert.deepEqual([passed.outcome, passed.reason], ['passed', '3/3'])

    const members = ['alpha', 'bravo', 'charlie']
    await waitFor('the members to enter epoch 1 and host its replicas', () => members.every((m) => {
      const f = node(m).status().federation!
      return f.epoch === 1 && f.orgs.length === 3 && f.hosting && f.pbft?.active === true
    }), 15_000)
    // One signed event drove it all, on every member: refusal gate, trust at the bottom, one audit entry.
    for (const m of members) {
      const n = node(m)
      await waitFor(`${m} to revoke delta`, () => n.isOrgRevoked(deltaRoot), 5_000)
      assert.ok(n.trust().some((t) => t.peer === delta.key && t.banned && t.score === 0), `${m} still trusts delta`)
      const revocations = async (): Promise<AuditEntry[]> => {
        const found: AuditEntry[] = []
        for await (const e of n.auditLog.tail(500)) if (e.action === 'federation.org.revoke') found.push(e)
        return found
      }
      const entries = await waitFor(`${m} to audit the revocation`, async () => { const found = await revocations(); return found.length > 0 ? found : undefined }, 5_000)
      assert.equal(entries.length, 1, `${m} audits the revocation once`)
      assert.equal(entries[0]!.org, 'delta')
    }
    await waitFor('delta\'s connections to the members to close', () => members.every((m) => !node(m).transport.connectedPeers().some((p) => toHex(p) === delta.key)), 10_000)
    // Delta is refused (cut off, or told it is no longer a member); the others order tasks among themselves.
    await assert.rejects(delta.propose({ title: 'from a revoked org', capability: 'ops' }, { scope: 'federation', timeoutMs: 3000 }), /not a member|no f\+1/)
    const after = await node('bravo').propose({ title: 'after the revocation', capability: 'ops' }, { scope: 'federation' })
    assert.deepEqual([after.epoch, after.outcome], [1, 'applied'])
    for (const m of members) await waitFor(`${m} to apply the epoch-1 task`, async () => (await titles(node(m))).includes('after the revocation'), 10_000)
    assert.ok(!(await titles(delta)).includes('after the revocation'))
  })

  it('admits a new org by vote; it joins from the exported epoch and orders tasks with the members', async () => {
    const dataDir = f.dir('echo')
    await mkdir(dataDir, { recursive: true })
    const echoRoot = (await loadOrCreateIdentity(dataDir, ORG_ROOT_KEY_FILE)).identity.publicKeyHex
    // Open when echo is admitted: the epoch carries it over, and echo (which has no copy) may claim it.
    const open = await node('charlie').propose({ title: 'open across the admission', capability: 'ops' }, { scope: 'federation' })
    // Three members left (f = 0): two approvals are a quorum.
    const approved = await node('alpha').federation.vote({ action: 'admit', name: 'echo', root: echoRoot })
    assert.deepEqual([approved.outcome, approved.reason], ['approved', '1/2'])
    assert.equal((await node('bravo').federation.vote({ action: 'admit', name: 'echo', root: echoRoot })).outcome, 'passed')
    await waitFor('alpha to enter epoch 2', () => node('alpha').status().federation!.epoch === 2, 10_000)

    // The operator hands echo the genesis and the epoch it was admitted into (fedmesh federation export).
    await writeGenesis(dataDir, f.genesis)
    const exported = node('alpha').federation.epochFile()
    assert.equal(exported.epoch, 2)
    assert.ok(exported.core !== undefined)
    await writeEpochFile(dataDir, exported)
    const echo = await f.startNode('echo', node('alpha').multiaddrs())
    await waitFor('echo to host its replica in epoch 2', () => echo.status().federation?.hosting === true && echo.status().federation?.epoch === 2, 15_000)
    // Anchors kept the epoch going meanwhile: echo first catches up (by state transfer past the stable
    // checkpoint), then orders with the others. Tasks ordered before it caught up are not in its board.
    const target = node('alpha').status().federation!.pbft!.lastExecuted
    await waitFor('echo to catch up with the epoch', () => (echo.status().federation?.pbft?.lastExecuted ?? 0) >= target, 15_000)
    const receipt = await echo.propose({ title: 'hello from echo', capability: 'ops' }, { scope: 'federation' })
    assert.deepEqual([receipt.epoch, receipt.outcome], [2, 'applied'])
    for (const m of ['alpha', 'bravo', 'charlie', 'echo']) await waitFor(`${m} to apply echo's task`, async () => (await titles(node(m))).includes('hello from echo'), 10_000)
    const claimed = await echo.federation.claim(`${open.epoch}.${open.seq}.${open.position}`)
    assert.equal(claimed.outcome, 'applied')
    await waitFor('charlie\'s copy to show echo\'s claim', async () => (await node('charlie').tasks.list({ limit: 1000 })).some((t) => t.title === 'open across the admission' && t.assignee === echo.key), 5_000)
    assert.ok(!(await titles(node('delta'))).includes('hello from echo'))
  })

  it('anchors every member node\'s audit head in the federation state', async () => {
    for (const m of ['alpha', 'bravo', 'charlie']) {
      const n = node(m)
      await waitFor(`${m}'s audit head to be anchored`, () => (n.federation.state?.anchorsOf(n.key).length ?? 0) > 0, 20_000)
      const anchor = n.federation.state!.anchorsOf(n.key).at(-1)!
      let hash: string | undefined
      for await (const e of n.auditLog.exportSince({ seq: anchor.auditSeq })) {
        hash = e.hash
        break
      }
      assert.equal(hash, anchor.head, `${m}'s anchored head matches its log`)
    }
  })
})

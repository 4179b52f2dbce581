import '../../node/runtime/polyfills.js'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { encodePbftMessage, sign, batchDigest } from '../../consensus/pbft/index.js'
import { encodeCanonical } from '../../base/codec.js'
import { sealEnvelope } from '../../base/envelope.js'
import { PBFT_TOPIC } from '../../node/federation/envelopes.js'
import { genesisId, writeGenesis, type Genesis } from '../../node/federation/genesis.js'
import { loadOrCreateToken } from '../../node/runtime/data-dir.js'
import { loadOrCreateIdentity } from '../../node/runtime/key-file.js'
import { silentLogger } from '../../base/log.js'
import { FedmeshNode } from '../../node/node.js'
import { CERT_FILE } from '../../node/org/org-identity.js'
import type { Task } from '../../node/org/task-board.js'
import { waitFor } from '../helpers/cli-node.js'
import { foundFederation, isFederated } from '../helpers/federation-genesis.js'

// 4 orgs × 1 node, real libp2p on 127.0.0.1, one genesis: cross-org tasks are ordered by PBFT and
// land in every org's Raft task board at the same sequence; an org outside the genesis is refused.
describe('federation: PBFT across 4 orgs (real libp2p on 127.0.0.1)', function () {
  this.timeout(20_000)
  const ORGS = ['alpha', 'bravo', 'charlie', 'delta']
  let root: string
  let genesis: Genesis
  const nodes: FedmeshNode[] = []
  let mallory: FedmeshNode

  const start = async (name: string, bootstrap: string[], api: { host: string, port: number } | null = null): Promise<FedmeshNode> =>
    await FedmeshNode.start({ dataDir: join(root, name), org: name, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap, api, heartbeatMs: 200, logger: silentLogger })

  const federationTasks = async (node: FedmeshNode): Promise<Task[]> => (await node.tasks.list({ limit: 1000 })).filter(isFederated)

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'fedmesh-federation-'))
    genesis = await foundFederation(ORGS, (name) => join(root, name), { checkpointInterval: 4, viewChangeTimeoutMs: 2000 })
    for (const name of ORGS) await writeGenesis(join(root, name), genesis)
    nodes.push(await start(ORGS[0]!, [], { host: '127.0.0.1', port: 0 }))
    for (const name of ORGS.slice(1)) nodes.push(await start(name, nodes[0]!.multiaddrs()))
    mallory = await start('mallory', nodes[0]!.multiaddrs())
    await waitFor('every node to host its org\'s replica', () => nodes.every((n) => n.status().federation?.hosting === true), 10_000)
  })

  after(async () => {
    for (const node of [...nodes, mallory]) await node?.stop()
    await rm(root, { recursive: true, force: true })
  })

  it('commits a cross-org task in all 4 orgs\' boards at the same sequence, sanitized, audited', async () => {
    const receipt = await nodes[1]!.propose({ title: 'rotate certificates', capability: 'ops.rotate', payload: { contact: 'alice@example.com', batch: 7 } }, { scope: 'federation' })
    assert.ok(receipt.seq >= 1 && receipt.accepted)
    const second = await nodes[3]!.propose({ title: 'second', capability: 'ops.rotate' }, { scope: 'federation' })
    assert.ok(second.seq > receipt.seq || (second.seq === receipt.seq && second.position > receipt.position))

    for (const node of nodes) {
      const tasks = await waitFor(`${node.org} to apply both federation tasks`, async () => {
        const found = await federationTasks(node)
        return found.length >= 2 ? found : undefined
      }, 10_000)
      const [first, next] = tasks.map((t) => t.payload as { federation: { seq: number, position: number, org: string, proposer: string }, payload: { contact?: string, batch?: number } | null })
      assert.deepEqual([first!.federation.seq, first!.federation.position], [receipt.seq, receipt.position])
      assert.deepEqual([next!.federation.seq, next!.federation.position], [second.seq, second.position])
      assert.equal(first!.federation.org, 'bravo')
      assert.equal(first!.federation.proposer, nodes[1]!.key)
      assert.equal(first!.payload?.batch, 7)
      assert.equal(first!.payload?.contact, '[REDACTED:email]')
      assert.equal(tasks[0]!.title, 'rotate certificates')
    }
    // Each org audits a decided task once it is in its board (just after the board shows it).
    await waitFor('charlie to audit both applies', async () => {
      const applied: string[] = []
      for await (const e of nodes[2]!.auditLog.tail(200)) if (e.action === 'federation.task.apply' && e.decision === 'allow') applied.push(e.detail.seq!)
      return applied.sort().join() === [String(receipt.seq), String(second.seq)].sort().join()
    }, 2_000)
  })

  it('lets only the target org claim a task; the claimer\'s result reaches every org\'s copy, sanitized', async () => {
    const [alpha, bravo, charlie] = [nodes[0]!, nodes[1]!, nodes[2]!]
    const receipt = await alpha.propose({ title: 'audit the ledger', capability: 'ops.audit', target: 'charlie' }, { scope: 'federation' })
    const ref = `${receipt.epoch}.${receipt.seq}.${receipt.position}`
    assert.deepEqual((await bravo.federation.claim(ref)).reason, 'not-the-target')
    const copy = async (node: FedmeshNode): Promise<Task | undefined> => (await federationTasks(node)).find((t) => t.title === 'audit the ledger')
    // Each org's copy is claimed and finished through the federation, never locally.
    const local = await waitFor('charlie to hold the task', async () => await copy(charlie), 5_000)
    await assert.rejects(charlie.tasks.claim(local.id), /through the federation/)
    assert.equal((await charlie.federation.claim(ref)).outcome, 'applied')
    assert.equal((await bravo.federation.finish(ref, 'done', 'not mine')).reason, 'not-the-claimer')
    assert.equal((await charlie.federation.finish(ref, 'done', { by: 'carol@example.com', ok: true })).outcome, 'applied')
    for (const node of nodes) {
      const done = await waitFor(`${node.org} to see the result`, async () => { const t = await copy(node); return t?.status === 'done' ? t : undefined }, 5_000)
      assert.equal(done.assignee, charlie.key)
      assert.deepEqual(done.result, { by: '[REDACTED:email]', ok: true })
    }
  })

  it('refuses PBFT messages and requests from a node whose org is not in the genesis', async () => {
    const dataDir = join(root, 'mallory')
    const { identity } = await loadOrCreateIdentity(dataDir)
    const certificate = new Uint8Array(await readFile(join(dataDir, CERT_FILE)))
    const id = genesisId(genesis)
    const primary = genesis.orgs[0]!.root
    const seal = (kind: number, to: string[], payload: Uint8Array): Uint8Array => sealEnvelope(identity, {
      type: 'pbft.message', org: 'mallory', timestampMs: Date.now(), nonce: new Uint8Array(randomBytes(16)),
      body: encodeCanonical([id, certificate, to, kind, payload])
    })
    const op = encodeCanonical(['forged', 'ops.rotate', 'null'])
    const batch = [{ client: `${primary}.${identity.publicKeyHex}.x.1`, timestamp: 1, op }]
    const before = nodes.map((n) => n.status().federation!.pbft!.lastExecuted)
    const forged = sign(identity, primary, { type: 'PrePrepare', view: 0, seq: before[0]! + 1, digest: batchDigest(batch), batch })
    await waitFor('mallory to see the federation topic\'s subscribers', async () => {
      await mallory.transport.publish(PBFT_TOPIC, seal(0, genesis.orgs.map((o) => o.root), encodePbftMessage(forged)))
      await mallory.transport.publish(PBFT_TOPIC, seal(1, [], encodeCanonical([`${mallory.orgRoot}.${identity.publicKeyHex}.x.1`, 1, op])))
      return nodes.every((n) => (n.status().federation!.rejected['not-federated'] ?? 0) >= 2)
    }, 8_000, 300)
    await new Promise((resolve) => setTimeout(resolve, 500))
    for (const [i, node] of nodes.entries()) {
      assert.equal(node.status().federation!.pbft!.lastExecuted, before[i])
      assert.ok((await node.tasks.list({ limit: 1000 })).every((t) => t.title !== 'forged'))
    }
    assert.throws(() => mallory.federation, /no federation genesis/)
  })

  it('serves cross-org tasks and the replica status over the admin API', async () => {
    const node = nodes[0]!
    const token = await loadOrCreateToken(join(root, ORGS[0]!))
    const call = async (method: string, path: string, body?: unknown): Promise<{ status: number, json: any }> => {
      const res = await fetch(node.apiUrl! + path, {
        method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, ...(body !== undefined ? { body: JSON.stringify(body) } : {})
      })
      return { status: res.status, json: await res.json() }
    }
    const ok = await call('POST', '/v1/federation/tasks', { title: 'over http', capability: 'ops.http', payload: { n: 1 } })
    assert.equal(ok.status, 200)
    assert.equal(ok.json.accepted, true)
    const bad = await call('POST', '/v1/federation/tasks', { title: 'no capability' })
    assert.equal(bad.status, 400)
    const status = await call('GET', '/v1/federation')
    assert.equal(status.status, 200)
    assert.equal(status.json.hosting, true)
    assert.ok(status.json.pbft.lastExecuted >= ok.json.seq)
    const metrics = await (await fetch(node.apiUrl! + '/metrics', { headers: { authorization: `Bearer ${token}` } })).text()
    assert.match(metrics, /^fedmesh_federation_epoch 0$/m)
    assert.match(metrics, /^fedmesh_pbft_hosting 1$/m)
    assert.match(metrics, /^# TYPE fedmesh_pbft_view_changes_total counter$/m)
    assert.match(metrics, /^fedmesh_federation_envelopes_total\{result="received",reason=""\} [1-9]/m)
    assert.match(metrics, /^# TYPE fedmesh_federation_envelopes_total counter$/m)
    const executed = Number(/^fedmesh_pbft_executed_seq (\d+)$/m.exec(metrics)?.[1])
    assert.ok(executed >= ok.json.seq, `executed ${executed}`)
    await waitFor('delta to apply the task proposed over HTTP', async () => (await federationTasks(nodes[3]!)).some((t) => t.title === 'over http'), 5_000)
  })
})

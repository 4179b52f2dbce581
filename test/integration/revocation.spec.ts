import '../../node/runtime/polyfills.js'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createSanitizer } from '../../sanitize/index.js'
import type { AuditEntry, AuditInput } from '../../node/gate/audit.js'
import { CAPABILITY_CHANNEL, CapabilityService } from '../../node/gate/capabilities.js'
import { encodeCanonical } from '../../base/codec.js'
import { sealEnvelope } from '../../base/envelope.js'
import { FedmeshError } from '../../base/errors.js'
import { NodeIdentity } from '../../base/ed25519.js'
import { toHex } from '../../base/bytes.js'
import { silentLogger } from '../../base/log.js'
import { FedmeshNode } from '../../node/node.js'
import { RevocationError } from '../../node/gate/revocation.js'
import { cryptoRng, systemClock } from '../../node/runtime/system-clock.js'
import type { RequestHandler, Transport } from '../../base/transport.js'
import { waitFor } from '../helpers/cli-node.js'
import { generateIdentity } from '../../node/runtime/key-file.js'

const HALF_LIFE_MS = 300
const isRevokedError = (err: unknown): boolean => err instanceof RevocationError && err.code === 'org-revoked'

async function auditOf (node: FedmeshNode, action: string): Promise<AuditEntry[]> {
  const out: AuditEntry[] = []
  for await (const e of node.auditLog.tail(1000)) if (e.action === action) out.push(e)
  return out
}

async function counted (node: FedmeshNode, name: string, labels: Record<string, string>): Promise<number> {
  const metric = await node.metrics.registry.getSingleMetric(name)!.get()
  return metric.values.filter((v) => Object.entries(labels).every(([k, value]) => v.labels[k] === value)).reduce((sum, v) => sum + v.value, 0)
}

const connected = (node: FedmeshNode, peer: FedmeshNode): boolean => node.transport.connectedPeers().some((k) => toHex(k) === peer.key)

async function startNode (dataDir: string, org: string, bootstrap: string[] = [], listen = ['/ip4/127.0.0.1/tcp/0']): Promise<FedmeshNode> {
  return await FedmeshNode.start({
    dataDir, org, listen, bootstrap, api: null, heartbeatMs: 200,
    trust: { halfLifeMs: HALF_LIFE_MS }, logger: silentLogger
  })
}

describe('revoking an organisation cuts its nodes off (real libp2p on 127.0.0.1)', function () {
  this.timeout(30_000)
  let root: string
  let a: FedmeshNode
  let b: FedmeshNode
  let c: FedmeshNode

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'fedmesh-revocation-'))
    a = await startNode(join(root, 'a'), 'org-a')
    await writeFile(join(root, 'a', 'policy.yaml'), 'capabilities:\n  echo:\n    allow:\n      - orgs: [org-b, org-c]\n')
    await a.policy.reload()
    a.expose('echo', async ({ payload }) => payload)
    ;[b, c] = await Promise.all([startNode(join(root, 'b'), 'org-b', a.multiaddrs()), startNode(join(root, 'c'), 'org-c', a.multiaddrs())])
    c.expose('echo', async ({ payload }) => payload)
    await waitFor('a full mesh of three', () => [a, b, c].every((x) => [a, b, c].every((y) => x === y || (x.membership.core.get(y.key)?.status === 'alive' && connected(x, y)))), 15_000)
    assert.deepEqual(await c.request(a.key, 'echo', { n: 1 }), { n: 1 }, 'c is served before the revocation')
  })

  after(async () => {
    await Promise.all([a, b, c].map(async (n) => await n?.stop()))
    await rm(root, { recursive: true, force: true })
  })

  it('on A: closes C\'s connection, pins its trust at 0, expels it, and refuses what B relays from it', async () => {
    const changes: string[] = []
    a.on('member:change', ({ kind, member }) => { if (member.key === c.key) changes.push(kind) })
    await a.revokeOrg(c.orgRoot, 'org-c', { reason: 'test', proposal: 'p-1' })
    assert.equal(a.isOrgRevoked(c.orgRoot), true)
    assert.equal(connected(a, c), false, 'A hung up before revokeOrg resolved')
    await waitFor('C to see A hang up', () => !connected(c, a), 1000, 10)
    assert.deepEqual(changes, ['expelled'])
    assert.equal(a.membership.core.get(c.key)?.status, 'dead')

    const trust = a.trust().find((t) => t.peer === c.key)!
    assert.deepEqual([trust.score, trust.banned, trust.quarantined], [0, true, true])
    await new Promise((resolve) => setTimeout(resolve, 2 * HALF_LIFE_MS))
    assert.equal(a.trust().find((t) => t.peer === c.key)!.score, 0, 'two half-lives later it has not drifted back')

    // C is still connected to B, which has not revoked yet and relays C's heartbeats to A.
    await waitFor('A to refuse C\'s heartbeats relayed by B', async () => await counted(a, 'fedmesh_envelopes_total', { result: 'ignored', reason: 'org-revoked' }) >= 2, 5000, 50)
    assert.ok(await counted(a, 'fedmesh_revoked_refusals_total', { path: 'announcement' }) >= 2)
    assert.equal(a.membership.core.get(c.key)?.status, 'dead', 'C\'s heartbeats do not revive it')
    assert.equal(connected(a, c), false)

    await assert.rejects(c.request(a.key, 'echo', { n: 2 }), 'the gater refuses C\'s dial to A')
    await assert.rejects(a.request(c.key, 'echo', { n: 3 }), isRevokedError)
    assert.deepEqual(await b.request(a.key, 'echo', { n: 4 }), { n: 4 }, 'B is still served')
  })

  it('on B too: C is isolated, its redials are refused at the connection gate, and each node audits once', async () => {
    await Promise.all([b.revokeOrg(c.orgRoot, 'org-c', { reason: 'test' }), b.revokeOrg(c.orgRoot, 'org-c', { reason: 'test' })])
    await a.revokeOrg(c.orgRoot, 'org-c', { reason: 'again' })
    assert.equal(connected(b, c), false)
    await waitFor('C to be alone', () => c.transport.connectedPeers().length === 0, 1000, 10)
    // C keeps dialing its bootstrap node A when alone; A's gater refuses every attempt.
    await waitFor('A to refuse C\'s redials', async () => await counted(a, 'fedmesh_revoked_refusals_total', { path: 'connection' }) > 0, 5000, 50)
    assert.equal(connected(a, c), false)

    for (const node of [a, b]) {
      const entries = await auditOf(node, 'federation.org.revoke')
      assert.equal(entries.length, 1)
      assert.deepEqual([entries[0]!.decision, entries[0]!.org, entries[0]!.detail.root, entries[0]!.detail.peersCut], ['deny', 'org-c', c.orgRoot, '1'])
      assert.equal((await auditOf(node, 'member.expelled')).length, 0)
      assert.ok((await auditOf(node, 'trust.threshold')).every((e) => e.peer !== c.key), 'no per-peer trust entries')
    }
    assert.ok(connected(a, b), 'A and B still talk')
  })

  it('a restarted node refuses at once, and re-applying the revocation writes no second entry', async () => {
    const listen = a.multiaddrs().filter((m) => m.startsWith('/ip4/127.0.0.1/tcp/'))
    await a.stop()
    // Same address, so C's bootstrap dials reach the restarted node.
    a = await startNode(join(root, 'a'), 'org-a', b.multiaddrs(), listen)
    assert.equal(a.isOrgRevoked(c.orgRoot), true)
    assert.deepEqual(a.revokedOrgs().map((o) => [o.root, o.org, o.peers]), [[c.orgRoot, 'org-c', [c.key]]])
    await a.revokeOrg(c.orgRoot, 'org-c', { reason: 'startup' })
    assert.equal((await auditOf(a, 'federation.org.revoke')).length, 1)
    await waitFor('A to refuse C\'s redials after the restart', async () => await counted(a, 'fedmesh_revoked_refusals_total', { path: 'connection' }) > 0, 5000, 50)
    assert.equal(connected(a, c), false)
    await assert.rejects(a.revokeOrg(a.orgRoot, 'org-a', {}), (err: Error) => err instanceof FedmeshError && err.code === 'revocation-own-org')
  })
})

// The connection gate stops known nodes of a revoked org; this gate stops one that gets through
// (a node the gater has not learned yet): refused with a typed error and audited like any denial.
describe('the capability gate of a revoked org', () => {
  const self = generateIdentity()
  const revoked = generateIdentity()
  const member = generateIdentity()
  const audits: AuditInput[] = []
  const conduct: string[] = []
  let serve: RequestHandler | undefined
  let sent = 0
  const transport: Transport = {
    localKey: self.publicKey,
    publish: async () => 0,
    onTopic: () => () => undefined,
    request: async () => { sent++; return new Uint8Array() },
    onRequest: (channel, handler) => { if (channel === CAPABILITY_CHANNEL) serve = handler; return () => undefined },
    send: () => undefined,
    onMessage: () => () => undefined,
    dial: async () => undefined,
    connectedPeers: () => [],
    hangUp: async () => undefined
  }
  const service = new CapabilityService({
    signer: self, org: 'org-a', transport, clock: systemClock, rng: cryptoRng, logger: silentLogger, isOrgRevoked: () => false,
    sanitizer: createSanitizer({ salt: new Uint8Array(32).fill(1) }),
    decide: () => ({ decision: 'allow', rule: 'echo.allow[0]', reason: 'allowed' }),
    trustOf: () => ({ score: 0.5, quarantined: false }),
    conduct: (peer, event) => { conduct.push(`${peer === revoked.publicKeyHex ? 'revoked' : 'member'}:${event}`) },
    audit: async (input) => { audits.push(input) },
    auditRejection: async (input) => { audits.push(input) },
    orgOf: () => undefined,
    isRevoked: (peer) => peer === revoked.publicKeyHex
  })
  service.expose('echo', async ({ payload }) => payload)
  const requestFrom = (identity: NodeIdentity, org: string): Uint8Array => sealEnvelope(identity, {
    type: 'capability.request', org, timestampMs: Date.now(), nonce: cryptoRng.bytes(16),
    body: encodeCanonical({ cap: 'echo', json: '{"n":1}' })
  })

  it('refuses a revoked org\'s node with org-revoked, audited as a deny, and serves others', async () => {
    await assert.rejects(serve!(revoked.publicKey, requestFrom(revoked, 'org-a')), isRevokedError)
    const denial = audits.find((e) => e.action === 'policy.decision')!
    assert.deepEqual([denial.decision, denial.peer, denial.detail?.rule], ['deny', revoked.publicKeyHex, 'org-revoked'])
    assert.deepEqual(conduct, [], 'a revoked node is banned already: no conduct events')
    assert.ok((await serve!(member.publicKey, requestFrom(member, 'org-b'))).length > 0)
    assert.deepEqual(conduct, ['member:valid-message'])
  })

  it('refuses to send to a revoked org\'s node without touching the network', async () => {
    await assert.rejects(service.request(revoked.publicKeyHex, 'echo', { n: 1 }), isRevokedError)
    assert.equal(sent, 0)
  })
})

import '../../node/runtime/polyfills.js'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ANNOUNCE_TYPE, encodeAnnouncementBody } from '../../membership/announcement.js'
import { MEMBERSHIP_TOPIC } from '../../membership/membership.js'
import type { AuditEntry } from '../../node/gate/audit.js'
import { sealEnvelope } from '../../base/envelope.js'
import { FedmeshError } from '../../base/errors.js'
import { loadOrCreateIdentity } from '../../node/runtime/key-file.js'
import { silentLogger } from '../../base/log.js'
import { FedmeshNode } from '../../node/node.js'
import { waitFor } from '../helpers/cli-node.js'

const HALF_LIFE_MS = 2000

async function entries (node: FedmeshNode): Promise<AuditEntry[]> {
  const out: AuditEntry[] = []
  for await (const e of node.auditLog.tail(1000)) out.push(e)
  return out
}

function startNode (dataDir: string, org: string, bootstrap: string[] = []): Promise<FedmeshNode> {
  return FedmeshNode.start({
    dataDir, org, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap, api: null, heartbeatMs: 200,
    trust: { halfLifeMs: HALF_LIFE_MS }, logger: silentLogger
  })
}

describe('the trust boundary between two organisations (real libp2p on 127.0.0.1)', function () {
  this.timeout(30_000)
  let root: string
  let acme: FedmeshNode
  let globex: FedmeshNode
  const received: unknown[] = []

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'fedmesh-boundary-'))
    const globexDir = join(root, 'globex')
    globex = await startNode(globexDir, 'globex')
    await writeFile(join(globexDir, 'policy.yaml'), [
      'capabilities:',
      '  summarize:',
      '    allow:',
      '      - orgs: [acme]',
      '        maxPayloadBytes: 4096',
      '        minTrust: 0.2',
      '        when: [{ field: amount, op: le, value: 1000 }]'
    ].join('\n'))
    await globex.policy.reload()
    globex.expose('summarize', async ({ payload }) => { received.push(payload); return { summary: 'ok', contact: 'ops@globex.example' } })
    acme = await startNode(join(root, 'acme'), 'acme', globex.multiaddrs())
    await waitFor('the two nodes to know each other', () => acme.membership.core.get(globex.key)?.status === 'alive' && globex.membership.core.get(acme.key)?.status === 'alive', 10_000)
  })

  after(async () => {
    await acme?.stop()
    await globex?.stop()
    await rm(root, { recursive: true, force: true })
  })

  it('sanitizes a cross-org payload before it leaves, and the receiver allows it by policy', async () => {
    const result = await acme.request(globex.key, 'summarize', { amount: 10, note: 'call alice@example.com', card: '4111 1111 1111 1111' }) as Record<string, string>
    assert.equal(result.summary, 'ok')
    assert.doesNotMatch(result.contact!, /ops@globex\.example/, 'the reply crossing back is sanitized too')
    const seen = JSON.stringify(received.at(-1))
    assert.doesNotMatch(seen, /alice@example\.com|4111/)
    assert.match(seen, /"amount":10/)

    const sent = (await entries(acme)).find((e) => e.action === 'capability.request' && e.decision === 'allow')
    assert.ok(sent !== undefined && sent.detail.crossOrg === 'true' && sent.detail['redacted.email'] === '1' && sent.digest.length === 64)
    const decided = (await entries(globex)).find((e) => e.action === 'policy.decision')
    assert.equal(decided?.decision, 'allow')
    assert.equal(decided?.detail.rule, 'summarize.allow[0]')
    assert.equal(decided?.peer, acme.key)
  })

  it('denies by default and by field condition, with the rule audited on the receiver', async () => {
    await assert.rejects(acme.request(globex.key, 'summarize', { amount: 5000 }), (err: Error) => err instanceof FedmeshError && err.code === 'denied')
    await assert.rejects(acme.request(globex.key, 'translate', { amount: 1 }), (err: Error) => err instanceof FedmeshError && err.code === 'denied' && /default-deny/.test(err.message))
    const denials = (await entries(globex)).filter((e) => e.action === 'policy.decision' && e.decision === 'deny')
    assert.deepEqual(denials.map((e) => e.detail.rule), ['summarize.allow[0]', 'default-deny'])
    assert.equal((await globex.auditLog.verify()).ok, true)
  })

  it('quarantines a peer that forges announcements, refuses it, and lets it back after good behaviour and time', async () => {
    const changes: string[] = []
    globex.on('peer:trust-changed', ({ peer, crossed }) => { if (peer === acme.key) changes.push(crossed) })
    const { identity: acmeIdentity } = await loadOrCreateIdentity(join(root, 'acme'))
    const forged = sealEnvelope(acmeIdentity, {
      type: ANNOUNCE_TYPE, org: 'acme', timestampMs: Date.now(), nonce: new Uint8Array(16).fill(7),
      body: encodeAnnouncementBody({ incarnation: 99, seq: 1, addrs: [], capabilities: [], certificate: new Uint8Array(0) })
    })
    forged[forged.length - 1] = forged[forged.length - 1]! ^ 0xff
    await acme.transport.publish(MEMBERSHIP_TOPIC, forged)
    await waitFor('acme to be quarantined by globex', () => changes.includes('entered-quarantine'), 5_000, 20)
    await assert.rejects(acme.request(globex.key, 'summarize', { amount: 1 }), (err: Error) => err instanceof FedmeshError && /quarantine/.test(err.message))
    assert.ok(globex.trust().find((t) => t.peer === acme.key)!.events.some((e) => e.type === 'invalid-signature'))

    await waitFor('acme to leave quarantine by drift and valid heartbeats', () => changes.includes('left-quarantine'), 3 * HALF_LIFE_MS, 50)
    const result = await acme.request(globex.key, 'summarize', { amount: 1 }) as Record<string, string>
    assert.equal(result.summary, 'ok')
    assert.ok((await entries(globex)).some((e) => e.action === 'trust.threshold' && e.peer === acme.key && e.detail.crossed === 'entered-quarantine'))
  })
})

import '../../node/runtime/polyfills.js'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fromHex } from '../../base/bytes.js'
import { encodeCanonical } from '../../base/codec.js'
import { sealEnvelope } from '../../base/envelope.js'
import { silentLogger } from '../../base/log.js'
import { auditTail, type AuditEntry } from '../../node/gate/audit.js'
import { CAPABILITY_CHANNEL } from '../../node/gate/capabilities.js'
import { FedmeshNode } from '../../node/node.js'
import { DB_DIR } from '../../node/runtime/data-dir.js'
import { loadOrCreateIdentity } from '../../node/runtime/key-file.js'
import { LevelStorage } from '../../node/runtime/level-storage.js'
import { cryptoRng } from '../../node/runtime/system-clock.js'
import { waitFor } from '../helpers/cli-node.js'

// Strangers cannot grow the audit log: 300 replays of one signed capability request (real libp2p on
// 127.0.0.1) write one full rejection entry and, when the window ends (here: at stop), one count.
describe('audit log under replayed requests', function () {
  this.timeout(40_000)
  let root: string

  before(async () => { root = await mkdtemp(join(tmpdir(), 'fedmesh-abuse-')) })
  after(async () => { await rm(root, { recursive: true, force: true }) })

  it('300 replays of one signed request write a bounded number of entries', async () => {
    const start = async (name: string, bootstrap: string[]): Promise<FedmeshNode> =>
      await FedmeshNode.start({ dataDir: join(root, name), org: name, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap, api: null, heartbeatMs: 200, logger: silentLogger })
    const target = await start('acme', [])
    const attacker = await start('globex', target.multiaddrs())
    let stopped = false
    try {
      await waitFor('the nodes to see each other', () => target.members().some((m) => m.key === attacker.key && m.status === 'alive'), 10_000)
      const { identity } = await loadOrCreateIdentity(join(root, 'globex'))
      const request = sealEnvelope(identity, {
        type: 'capability.request', org: 'globex', timestampMs: Date.now(), nonce: cryptoRng.bytes(16), body: encodeCanonical({ cap: 'echo', json: '{"n":1}' })
      })
      const refusals = new Map<string, number>()
      for (let i = 0; i < 300; i++) {
        const code = await attacker.transport.request(fromHex(target.key), CAPABILITY_CHANNEL, request).then(() => 'served', (err: { code?: string }) => err.code ?? 'error')
        refusals.set(code, (refusals.get(code) ?? 0) + 1)
      }
      assert.deepEqual([...refusals], [['denied', 1], ['replay', 299]], 'the first is decided by the (empty) policy, the rest are replays')
      await attacker.stop()
      await target.stop()
      stopped = true
      const storage = await LevelStorage.open(join(root, 'acme', DB_DIR))
      const entries: AuditEntry[] = []
      for await (const entry of auditTail(storage, 1000)) if (entry.peer === attacker.key) entries.push(entry)
      await storage.close()
      const rejections = entries.filter((e) => e.action === 'capability.request' || (e.action === 'audit.repeated' && e.detail.action === 'capability.request'))
      assert.deepEqual(rejections.map((e) => [e.action, e.detail.reason, e.detail.count]), [['capability.request', 'replay', undefined], ['audit.repeated', 'replay', '298']])
      assert.ok(entries.length <= 8, `at most a few entries about the attacker, got ${entries.length}: ${entries.map((e) => e.action).join(', ')}`)
    } finally {
      if (!stopped) await Promise.all([attacker.stop(), target.stop()])
    }
  })
})

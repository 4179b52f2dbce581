import assert from 'node:assert/strict'
import { describe, it } from 'mocha'
import { encodeCanonical } from '../../base/codec.js'
import { MemoryStorage } from '../../base/memory-storage.js'
import { REVOKED_KEY_PREFIX, REVOKED_PEERS_PER_ORG_MAX, RevocationError, RevocationList } from '../../node/gate/revocation.js'

const key = (n: number): string => n.toString(16).padStart(64, '0')
const ROOT = key(0xc0)

describe('RevocationList', () => {
  it('adds an org once, remembers its nodes, and survives a crash once persisted', async () => {
    const storage = new MemoryStorage()
    const list = await RevocationList.load({ storage })
    assert.equal(list.isOrgRevoked(ROOT), false)
    assert.equal(list.add(ROOT, 'org-c', 1000), true)
    assert.equal(list.add(ROOT, 'org-c', 2000), false, 'idempotent')
    assert.equal(list.addPeer(ROOT, key(1)), true)
    assert.equal(list.addPeer(ROOT, key(1)), false)
    assert.equal(list.rootOfPeer(key(1)), ROOT)
    assert.equal(list.rootOfPeer(key(2)), undefined)
    list.add(key(0xd0), 'org-d', 3000) // never persisted: lost in the crash
    await list.persist(ROOT)

    const reloaded = await RevocationList.load({ storage: storage.crash() })
    assert.deepEqual(reloaded.list(), [{ root: ROOT, org: 'org-c', revokedAtMs: 1000, peers: [key(1)] }])
    assert.equal(reloaded.rootOfPeer(key(1)), ROOT)
    assert.equal(reloaded.isOrgRevoked(key(0xd0)), false)
  })

  it('bounds the nodes remembered per org', async () => {
    const list = await RevocationList.load({ storage: new MemoryStorage() })
    list.add(ROOT, 'org-c', 0)
    for (let i = 0; i < REVOKED_PEERS_PER_ORG_MAX; i++) assert.equal(list.addPeer(ROOT, key(i + 1)), true)
    assert.equal(list.addPeer(ROOT, key(0xffff)), false)
    assert.equal(list.list()[0]!.peers.length, REVOKED_PEERS_PER_ORG_MAX)
  })

  it('counts refusals per gate', async () => {
    const list = await RevocationList.load({ storage: new MemoryStorage() })
    list.count('connection')
    list.count('connection')
    list.count('announcement')
    assert.deepEqual(list.refusals(), { announcement: 1, capability: 0, connection: 2, federation: 0 })
  })

  it('rejects invalid input with a typed error and skips corrupt records on load', async () => {
    const list = await RevocationList.load({ storage: new MemoryStorage() })
    const invalid = (err: unknown): boolean => err instanceof RevocationError && err.code === 'revocation-invalid'
    assert.throws(() => list.add('C0', 'org-c', 0), invalid)
    assert.throws(() => list.add(ROOT, 'Org C!', 0), invalid)
    assert.throws(() => list.add(ROOT, 'org-c', -1), invalid)
    list.add(ROOT, 'org-c', 0)
    assert.throws(() => list.addPeer(ROOT, 'not-a-key'), invalid)

    const storage = new MemoryStorage()
    const good = encodeCanonical({ org: 'org-d', at: 5, peers: [key(9)] })
    await storage.batch([
      { type: 'put', key: REVOKED_KEY_PREFIX + ROOT, value: new Uint8Array([0xff, 0x00]) },
      { type: 'put', key: REVOKED_KEY_PREFIX + 'nothex', value: good },
      { type: 'put', key: REVOKED_KEY_PREFIX + key(0xe0), value: encodeCanonical({ org: 'org-e', at: 5, peers: ['x'] }) },
      { type: 'put', key: REVOKED_KEY_PREFIX + key(0xd0), value: good }
    ])
    const loaded = await RevocationList.load({ storage })
    assert.deepEqual(loaded.list().map((o) => [o.root, o.org, o.peers]), [[key(0xd0), 'org-d', [key(9)]]])
  })
})

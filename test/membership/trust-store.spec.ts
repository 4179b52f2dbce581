import assert from 'node:assert/strict'
import { describe, it } from 'mocha'
import { MemoryStorage } from '../../base/memory-storage.js'
import type { BatchOp, Storage } from '../../base/storage.js'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { NodeIdentity } from '../../base/ed25519.js'
import { TrustStore, TRUST_KEY_PREFIX } from '../../membership/trust-store.js'
import { TRUST_SCORE_THRESHOLDS, gossipsubAppScore } from '../../membership/trust.js'
import { libp2pPrivateKey } from '../../node/runtime/key-file.js'
import { appScoreByPeerId } from '../../node/runtime/libp2p-transport.js'

const HOUR_MS = 3_600_000
const peer = (n: number): string => n.toString(16).padStart(64, '0')

async function keys (storage: Storage): Promise<string[]> {
  const out: string[] = []
  for await (const [key] of storage.iterate(TRUST_KEY_PREFIX)) out.push(key)
  return out
}

describe('TrustStore', () => {
  it('writes nothing until flush, then survives a crash', async () => {
    const storage = new MemoryStorage()
    const store = await TrustStore.load({ storage, trust: { halfLifeMs: HOUR_MS } })
    store.record(peer(1), 'equivocation', 0)
    store.record(peer(2), 'completed-work', 0)
    store.record(peer(2), 'completed-work', 10)
    assert.equal(store.dirtyCount, 2)
    assert.deepEqual(await keys(storage), [])
    assert.equal(await store.flush(), 2)
    assert.equal(store.dirtyCount, 0)
    assert.equal(await store.flush(), 0)
    store.record(peer(3), 'timeout', 20) // never flushed: lost in the crash

    const restarted = storage.crash()
    const reloaded = await TrustStore.load({ storage: restarted, trust: { halfLifeMs: HOUR_MS } })
    assert.deepEqual(reloaded.book.snapshot(HOUR_MS), store.book.snapshot(HOUR_MS).filter((p) => p.peer !== peer(3)))
    assert.equal(reloaded.book.isQuarantined(peer(1), 0), true)
    assert.equal(reloaded.book.size, 2)
  })

  it('persists evictions as deletions and drift crossings as state', async () => {
    const storage = new MemoryStorage()
    const store = await TrustStore.load({ storage, trust: { peersMax: 2, halfLifeMs: HOUR_MS } })
    store.record(peer(1), 'equivocation', 0)
    store.record(peer(2), 'valid-message', 0)
    await store.flush()
    assert.equal(store.record(peer(3), 'valid-message', 1).evicted, peer(2))
    await store.flush()
    assert.deepEqual(await keys(storage), [TRUST_KEY_PREFIX + peer(1), TRUST_KEY_PREFIX + peer(3)])

    assert.equal(store.crossings(HOUR_MS).length, 1)
    await store.flush()
    const reloaded = await TrustStore.load({ storage, trust: { peersMax: 2, halfLifeMs: HOUR_MS } })
    assert.deepEqual(reloaded.crossings(2 * HOUR_MS), [], 'the crossing was reported before the restart')
  })

  it('flushes by itself when the dirty set reaches its bound', async () => {
    const storage = new MemoryStorage()
    const store = await TrustStore.load({ storage, dirtyPeersMax: 3 })
    for (let i = 1; i <= 3; i++) store.record(peer(i), 'valid-message', 0)
    await store.flush()
    assert.equal((await keys(storage)).length, 3)
    store.record(peer(4), 'valid-message', 0)
    store.record(peer(5), 'valid-message', 0)
    assert.equal(store.dirtyCount, 2)
    store.record(peer(6), 'valid-message', 0)
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(store.dirtyCount, 0, 'no flush() call was needed')
    assert.equal((await keys(storage)).length, 6)
  })

  it('keeps dirty peers when a batch fails, and retries them', async () => {
    const storage = new MemoryStorage()
    let failing = true
    const flaky: Storage = {
      get: async (key) => await storage.get(key),
      iterate: (prefix, options) => storage.iterate(prefix, options),
      close: async () => await storage.close(),
      batch: async (ops: ReadonlyArray<BatchOp>) => {
        if (failing) throw new Error('disk full')
        await storage.batch(ops)
      }
    }
    const store = await TrustStore.load({ storage: flaky })
    store.record(peer(1), 'replay', 0)
    await assert.rejects(store.flush(), /disk full/)
    assert.equal(store.dirtyCount, 1)
    failing = false
    assert.equal(await store.flush(), 1)
    assert.deepEqual(await keys(storage), [TRUST_KEY_PREFIX + peer(1)])
  })

  it('drops corrupt records on load and deletes them on the next flush', async () => {
    const storage = new MemoryStorage()
    const enc = new TextEncoder()
    const good = { score: 0.3, updatedMs: 0, quarantined: false, events: [] }
    await storage.batch([
      { type: 'put', key: TRUST_KEY_PREFIX + peer(1), value: enc.encode(JSON.stringify(good)) },
      { type: 'put', key: TRUST_KEY_PREFIX + peer(2), value: enc.encode('{not json') },
      { type: 'put', key: TRUST_KEY_PREFIX + 'nope', value: enc.encode(JSON.stringify(good)) },
      { type: 'put', key: TRUST_KEY_PREFIX + peer(3), value: enc.encode(JSON.stringify({ ...good, score: 7 })) }
    ])
    const store = await TrustStore.load({ storage })
    assert.equal(store.book.size, 1)
    assert.equal(store.book.score(peer(1), 0), 0.3)
    assert.equal(await store.flush(), 3)
    assert.deepEqual(await keys(storage), [TRUST_KEY_PREFIX + peer(1)])
  })

  it('scores libp2p peer ids for gossipsub from the key they carry', async () => {
    const store = await TrustStore.load({ storage: new MemoryStorage() })
    const identity = new NodeIdentity(new Uint8Array(32).fill(7))
    const peerId = peerIdFromPrivateKey(await libp2pPrivateKey(identity)).toString()
    const score = appScoreByPeerId((key) => store.appSpecificScore(key, 0))
    assert.equal(score(peerId), 0, 'a peer at the prior is neutral')
    store.record(identity.publicKeyHex, 'equivocation', 0)
    assert.equal(score(peerId), gossipsubAppScore(store.book.score(identity.publicKeyHex, 0)))
    assert.ok(score(peerId) < TRUST_SCORE_THRESHOLDS.graylistThreshold)
    assert.equal(score('not-a-peer-id'), 0)
  })
})

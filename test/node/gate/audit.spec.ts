import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import * as cborg from 'cborg'
import { fromHex } from '../../../base/bytes.js'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  AUDIT_HEAD_KEY, AuditLog, GENESIS_HASH, auditEntryJson, auditEntryKey, decodeStoredAuditEntry, entryProblem,
  parseAuditEntry, sha256Hex, type AuditEntry
} from '../../../node/gate/audit.js'
import { FedmeshError } from '../../../base/errors.js'
import { NodeIdentity, verify } from '../../../base/ed25519.js'
import { LevelStorage } from '../../../node/runtime/level-storage.js'
import { MemoryStorage } from '../../../base/memory-storage.js'
import type { BatchOp, Storage } from '../../../base/storage.js'
import { PEER_HEX, manualClock, sampleInput } from './audit-helpers.js'
import { generateIdentity } from '../../../node/runtime/key-file.js'

const identity = new NodeIdentity(new Uint8Array(32).fill(7))

async function collect<T> (iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = []
  for await (const item of iterable) items.push(item)
  return items
}

const hasCode = (code: string) => (err: unknown): boolean => {
  assert.ok(err instanceof FedmeshError, String(err))
  assert.equal(err.code, code)
  return true
}

/** Wraps a Storage to record every batch and optionally hold or fail them. */
class SpyStorage implements Storage {
  readonly batches: BatchOp[][] = []
  gate: Promise<void> | undefined
  failNext = false
  constructor (readonly inner: Storage) {}
  get (key: string): Promise<Uint8Array | undefined> { return this.inner.get(key) }
  iterate (prefix: string, options?: { limit?: number, reverse?: boolean, gt?: string }): AsyncIterable<[string, Uint8Array]> {
    return this.inner.iterate(prefix, options)
  }

  async batch (ops: ReadonlyArray<BatchOp>): Promise<void> {
    this.batches.push([...ops])
    await this.gate
    if (this.failNext) {
      this.failNext = false
      throw new Error('disk full')
    }
    await this.inner.batch(ops)
  }

  close (): Promise<void> { return this.inner.close() }
}

describe('AuditLog', () => {
  it('appends a signed, chained entry and reads it back exactly', async () => {
    const clock = manualClock()
    const storage = new MemoryStorage()
    const log = await AuditLog.open({ storage, signer: identity, clock })
    const first = await log.append(sampleInput(1))
    clock.advance(5)
    const second = await log.append({ action: 'member.joined', decision: 'info', digest: 'cd'.repeat(32) })

    assert.equal(first.seq, 1)
    assert.equal(first.prevHash, GENESIS_HASH)
    assert.equal(first.actor, identity.publicKeyHex)
    assert.equal(first.peer, PEER_HEX)
    assert.equal(first.timeMs, clock.wallMs() - 5)
    assert.equal(first.digest, sha256Hex(new TextEncoder().encode('sanitized payload 1')))
    assert.deepEqual(first.detail, { rule: 'rule-1', reason: 'sample' })
    assert.equal(entryProblem(first, identity.publicKeyHex), undefined)
    assert.deepEqual(second, { ...second, seq: 2, prevHash: first.hash, peer: '', org: '', detail: {}, digest: 'cd'.repeat(32) })

    assert.deepEqual(decodeStoredAuditEntry((await storage.get(auditEntryKey(1)))!).entry, first)
    assert.deepEqual(decodeStoredAuditEntry((await storage.get(auditEntryKey(2)))!).entry, second)
    assert.deepEqual(log.head, { seq: 2, hash: second.hash })
    assert.deepEqual(await log.verify(), { ok: true, count: 2, headHash: second.hash })
  })

  it('hashes exactly as the README states, so an independent verifier can be written', async () => {
    const log = await AuditLog.open({ storage: new MemoryStorage(), signer: identity, clock: manualClock() })
    const entry = await log.append(sampleInput(1))
    const { seq, timeMs, actor, peer, org, action, decision, digest, detail, prevHash } = entry
    // cborg's default encoding sorts map keys length-first, then bytewise: RFC 8949 deterministic order for these keys.
    const fields = cborg.encode({ seq, timeMs, actor, peer, org, action, decision, digest, detail, prevHash })
    const hash = createHash('sha256').update('fedmesh/audit/v1\n', 'ascii').update(fields).digest()
    assert.equal(entry.hash, hash.toString('hex'))
    assert.ok(verify(fromHex(actor), hash, fromHex(entry.sig)), 'the signature is over the 32 hash bytes')
  })

  it('signs on the thread pool exactly as the identity signs', async () => {
    const message = new TextEncoder().encode('audit hash')
    assert.deepEqual(await identity.signAsync(message), identity.sign(message))
    const log = await AuditLog.open({ storage: new MemoryStorage(), signer: identity, clock: manualClock() })
    const entries = await Promise.all([0, 1, 2].map(async (i) => await log.append(sampleInput(i))))
    assert.equal(log.ownerHex, identity.publicKeyHex)
    assert.deepEqual(await log.verify(), { ok: true, count: 3, headHash: entries[2]!.hash })
  })

  it('never stores the content, only its digest', async () => {
    const storage = new MemoryStorage()
    const log = await AuditLog.open({ storage, signer: identity, clock: manualClock() })
    await log.append({ action: 'envelope.out', decision: 'allow', content: new TextEncoder().encode('alice@example.org') })
    for await (const [, value] of storage.iterate('')) {
      assert.ok(!Buffer.from(value).toString('latin1').includes('alice@example.org'))
    }
  })

  it('round-trips the JSON form, which can be re-checked on its own', async () => {
    const log = await AuditLog.open({ storage: new MemoryStorage(), signer: identity, clock: manualClock() })
    const entry = await log.append(sampleInput(3))
    const json = JSON.parse(auditEntryJson(entry)) as unknown
    assert.deepEqual(Object.keys(json as object), ['seq', 'timeMs', 'actor', 'peer', 'org', 'action', 'decision', 'digest', 'detail', 'prevHash', 'hash', 'sig'])
    const parsed = parseAuditEntry(json)
    assert.deepEqual(parsed, entry)
    assert.equal(entryProblem(parsed, identity.publicKeyHex), undefined)
    assert.equal(entryProblem({ ...parsed, org: 'org-c' }, identity.publicKeyHex), 'hash-mismatch')
    assert.throws(() => parseAuditEntry({ ...(json as object), extra: 1 }), hasCode('audit-entry-malformed'))
    assert.throws(() => parseAuditEntry({ ...(json as object), seq: 0 }), hasCode('audit-entry-malformed'))
  })

  it('rejects invalid input with a typed error and does not advance the chain', async () => {
    const log = await AuditLog.open({ storage: new MemoryStorage(), signer: identity, clock: manualClock() })
    const bad = [
      { action: 'Envelope In', decision: 'accept' },
      { action: 'envelope.in', decision: 'maybe' },
      { action: 'envelope.in', decision: 'accept', peer: 'not-hex' },
      { action: 'envelope.in', decision: 'accept', digest: 'AB'.repeat(32) },
      { action: 'envelope.in', decision: 'accept', org: 'o'.repeat(129) },
      { action: 'envelope.in', decision: 'accept', detail: { reason: 'x'.repeat(257) } },
      { action: 'envelope.in', decision: 'accept', detail: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])) },
      { action: 'envelope.in', decision: 'accept', detail: { reason: 42 } },
      { action: 'envelope.in', decision: 'accept', content: new Uint8Array(1), digest: 'ab'.repeat(32) }
    ]
    for (const input of bad) {
      await assert.rejects(log.append(input as never), hasCode('audit-input-invalid'), JSON.stringify(input))
    }
    assert.equal((await log.append(sampleInput(0))).seq, 1)
  })

  for (const kind of ['MemoryStorage', 'LevelStorage'] as const) {
    it(`chains 1000 concurrent appends in call order and writes them in bounded group commits (${kind})`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'fedmesh-audit-'))
      const storage = new SpyStorage(kind === 'MemoryStorage' ? new MemoryStorage() : await LevelStorage.open(join(dir, 'db')))
      try {
        const log = await AuditLog.open({ storage, signer: identity, clock: manualClock() })
        const resolved = await Promise.all(Array.from({ length: 1000 }, async (_, i) => await log.append(sampleInput(i))))
        assert.deepEqual(resolved.map((e) => e.seq), Array.from({ length: 1000 }, (_, i) => i + 1))
        for (const entry of resolved) assert.deepEqual(decodeStoredAuditEntry((await storage.get(auditEntryKey(entry.seq)))!).entry, entry)
        assert.deepEqual(storage.batches.map((ops) => ops.length), [513, 489])
        for (const ops of storage.batches) assert.equal(ops[ops.length - 1]!.key, AUDIT_HEAD_KEY)
        assert.deepEqual(await log.verify(), { ok: true, count: 1000, headHash: resolved[999]!.hash })
      } finally {
        await storage.close()
        await rm(dir, { recursive: true, force: true })
      }
    })
  }

  it('groups the appends issued while a batch is being written into the next batch', async () => {
    const storage = new SpyStorage(new MemoryStorage())
    const log = await AuditLog.open({ storage, signer: identity, clock: manualClock() })
    let release!: () => void
    storage.gate = new Promise((resolve) => { release = resolve })
    const first = log.append(sampleInput(0))
    // Signing runs on the thread pool: wait (boundedly) for the first batch to reach storage.
    for (let i = 0; i < 1000 && storage.batches.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 1))
    assert.equal(storage.batches.length, 1)
    const later = [1, 2, 3, 4, 5].map(async (i) => await log.append(sampleInput(i)))
    let firstDone = false
    void first.then(() => { firstDone = true })
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(firstDone, false, 'resolved before its batch was durable')
    release()
    await Promise.all([first, ...later])
    assert.deepEqual(storage.batches.map((ops) => ops.length), [2, 6])
  })

  it('signs the next batch while the previous one is written, and writes them in order', async () => {
    const storage = new SpyStorage(new MemoryStorage())
    let signed = 0
    const signer = { publicKey: identity.publicKey, sign: (message: Uint8Array) => { signed++; return identity.sign(message) } }
    const log = await AuditLog.open({ storage, signer, clock: manualClock(), batchEntriesMax: 2 })
    let release!: () => void
    storage.gate = new Promise((resolve) => { release = resolve })
    const appends = [0, 1, 2, 3, 4].map(async (i) => await log.append(sampleInput(i)))
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(storage.batches.length, 1, 'the second batch waits for the first write')
    assert.equal(signed, 4, 'the second batch is signed during the first write, the third is not taken yet')
    release()
    const entries = await Promise.all(appends)
    assert.deepEqual(storage.batches.map((ops) => ops.map((op) => op.key.slice(-1))), [['1', '2', 'd'], ['3', '4', 'd'], ['5', 'd']])
    assert.deepEqual(await log.verify(), { ok: true, count: 5, headHash: entries[4]!.hash })
  })

  it('never writes a batch chained on a failed one', async () => {
    const storage = new SpyStorage(new MemoryStorage())
    const log = await AuditLog.open({ storage, signer: identity, clock: manualClock(), batchEntriesMax: 2 })
    let release!: () => void
    storage.gate = new Promise((resolve) => { release = resolve })
    storage.failNext = true
    const results = Promise.allSettled([0, 1, 2, 3, 4].map(async (i) => await log.append(sampleInput(i))))
    await new Promise((resolve) => setImmediate(resolve))
    release()
    for (const result of await results) assert.ok(hasCode('audit-write-failed')((result as PromiseRejectedResult).reason))
    assert.equal(storage.batches.length, 1)
    assert.deepEqual(await collect(storage.iterate('')), [])
  })

  it('refuses appends over the queue bound with audit-queue-full', async () => {
    const log = await AuditLog.open({ storage: new MemoryStorage(), signer: identity, clock: manualClock(), queueEntriesMax: 4 })
    const results = await Promise.allSettled(Array.from({ length: 6 }, async (_, i) => await log.append(sampleInput(i))))
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'rejected'])
    assert.ok(hasCode('audit-queue-full')((results[4] as PromiseRejectedResult).reason))
    assert.equal((await log.append(sampleInput(9))).seq, 5)
    assert.equal((await log.verify()).ok, true)
  })

  it('fails every waiting append when a write fails, and resumes after a reopen', async () => {
    const memory = new MemoryStorage()
    const storage = new SpyStorage(memory)
    const clock = manualClock()
    const log = await AuditLog.open({ storage, signer: identity, clock })
    await log.append(sampleInput(0))
    storage.failNext = true
    const failed = await Promise.allSettled([1, 2, 3].map(async (i) => await log.append(sampleInput(i))))
    for (const result of failed) assert.ok(hasCode('audit-write-failed')((result as PromiseRejectedResult).reason))
    await assert.rejects(log.append(sampleInput(4)), hasCode('audit-write-failed'))

    const reopened = await AuditLog.open({ storage, signer: identity, clock })
    assert.equal((await reopened.append(sampleInput(5))).seq, 2)
    assert.deepEqual((await reopened.verify()).ok, true)
  })

  it('refuses appends after close and writes what was queued before it', async () => {
    const storage = new MemoryStorage()
    const log = await AuditLog.open({ storage, signer: identity, clock: manualClock() })
    const queued = log.append(sampleInput(0))
    await log.close()
    assert.equal((await queued).seq, 1)
    await assert.rejects(log.append(sampleInput(1)), hasCode('audit-closed'))
    assert.deepEqual((await log.verify()).ok, true)
  })

  it('serves the tail and exports since a seq or a time', async () => {
    const clock = manualClock(1_000)
    const log = await AuditLog.open({ storage: new MemoryStorage(), signer: identity, clock })
    const entries: AuditEntry[] = []
    for (let i = 0; i < 8; i++) {
      entries.push(await log.append(sampleInput(i)))
      clock.advance(10)
    }
    assert.deepEqual(await collect(log.tail(3)), entries.slice(5))
    assert.deepEqual(await collect(log.tail(100)), entries)
    assert.deepEqual(await collect(log.tail(0)), [])
    assert.deepEqual(await collect(log.exportSince({ seq: 6 })), entries.slice(5))
    assert.deepEqual(await collect(log.exportSince({ seq: 0 })), entries)
    assert.deepEqual(await collect(log.exportSince({ seq: 9 })), [])
    assert.deepEqual(await collect(log.exportSince({ timeMs: 1_035 })), entries.slice(4))
    await assert.rejects(collect(log.tail(-1)), hasCode('audit-input-invalid'))
    await assert.rejects(collect(log.exportSince({ seq: 1.5 })), hasCode('audit-input-invalid'))
  })

  it('refuses to append as another node to an existing log', async () => {
    const storage = new MemoryStorage()
    await (await AuditLog.open({ storage, signer: identity, clock: manualClock() })).append(sampleInput(0))
    const other = generateIdentity()
    const log = await AuditLog.open({ storage, signer: other, clock: manualClock() })
    await assert.rejects(log.append(sampleInput(1)), hasCode('audit-owner-mismatch'))
    assert.deepEqual(await log.verify(), { ok: false, firstBadSeq: 1, reason: 'foreign-actor', message: 'entry 1: foreign-actor' })
  })

  for (const kind of ['MemoryStorage crash', 'LevelStorage close and reopen'] as const) {
    it(`resumes the chain after a restart (${kind})`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'fedmesh-audit-'))
      try {
        let storage: Storage = kind.startsWith('Memory') ? new MemoryStorage() : await LevelStorage.open(join(dir, 'db'))
        const clock = manualClock()
        const log = await AuditLog.open({ storage, signer: identity, clock })
        const before = await Promise.all([0, 1, 2].map(async (i) => await log.append(sampleInput(i))))
        if (storage instanceof MemoryStorage) {
          storage = storage.crash()
        } else {
          await storage.close()
          storage = await LevelStorage.open(join(dir, 'db'))
        }
        const resumed = await AuditLog.open({ storage, signer: identity, clock })
        assert.deepEqual(resumed.head, { seq: 3, hash: before[2]!.hash })
        const next = await resumed.append(sampleInput(3))
        assert.equal(next.seq, 4)
        assert.equal(next.prevHash, before[2]!.hash)
        assert.deepEqual(await resumed.verify(), { ok: true, count: 4, headHash: next.hash })
        await storage.close()
      } finally {
        await rm(dir, { recursive: true, force: true })
      }
    })
  }
})

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decode, encode } from 'cborg'
import { Level } from 'level'
import { AuditLog, verifyAuditLog, type AuditVerifyResult } from '../../../node/gate/audit.js'
import { FedmeshError } from '../../../base/errors.js'
import { NodeIdentity } from '../../../base/ed25519.js'
import { toHex } from '../../../base/bytes.js'
import { LevelStorage } from '../../../node/runtime/level-storage.js'
import { manualClock, sampleInput } from './audit-helpers.js'

// Tampering goes around AuditLog: these tests open the LevelDB directly with `level` and rewrite
// bytes as an attacker with disk access would, encoding entries independently of node/audit*.ts.

const owner = new NodeIdentity(new Uint8Array(32).fill(1))
const attacker = new NodeIdentity(new Uint8Array(32).fill(2))
const ENTRIES = 10
const HEAD_KEY = 'audit/head'
const keyOf = (seq: number): string => `audit/${String(seq).padStart(20, '0')}`

type Raw = Record<string, unknown> & { seq: number, hash: string, prevHash: string, actor: string, sig: string }

// Stored form: {fields: canonical CBOR of the fields, hash: 32 bytes, sig: 64 bytes}.
function decodeStored (bytes: Uint8Array): Raw {
  const { fields, hash, sig } = decode(bytes) as { fields: Uint8Array, hash: Uint8Array, sig: Uint8Array }
  return { ...(decode(fields) as object), hash: toHex(hash), sig: toHex(sig) } as Raw
}

function encodeStored (entry: Raw): Uint8Array {
  const { hash, sig, ...fields } = entry
  return encode({ fields: encode(fields), hash: Buffer.from(hash, 'hex'), sig: Buffer.from(sig, 'hex') })
}

/** Re-hashes (and re-signs, when given a key) an entry the way a careful forger would. */
function forge (entry: Raw, signer?: NodeIdentity): Raw {
  const { hash: _hash, sig: _sig, ...fields } = entry
  const hash = createHash('sha256').update('fedmesh/audit/v1\n').update(encode(fields)).digest('hex')
  const sig = signer === undefined ? entry.sig : toHex(signer.sign(Buffer.from(hash, 'hex')))
  return { ...fields, hash, sig } as Raw
}

describe('AuditLog tamper evidence (LevelDB edited directly)', () => {
  let dir: string
  const dbPath = (): string => join(dir, 'db')

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fedmesh-tamper-'))
    const storage = await LevelStorage.open(dbPath())
    const log = await AuditLog.open({ storage, signer: owner, clock: manualClock() })
    await Promise.all(Array.from({ length: ENTRIES }, async (_, i) => await log.append(sampleInput(i))))
    await log.close()
    await storage.close()
  })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  async function tamper (edit: (db: Level<string, Uint8Array>) => Promise<void>): Promise<void> {
    const db = new Level<string, Uint8Array>(dbPath(), { valueEncoding: 'view' })
    await db.open()
    try {
      await edit(db)
    } finally {
      await db.close()
    }
  }

  async function read (db: Level<string, Uint8Array>, seq: number): Promise<Raw> {
    return decodeStored((await db.get(keyOf(seq)))!)
  }

  async function writeHead (db: Level<string, Uint8Array>, entry: Raw): Promise<void> {
    await db.put(HEAD_KEY, encode({ seq: entry.seq, hash: entry.hash }))
  }

  async function verify (): Promise<AuditVerifyResult> {
    const storage = await LevelStorage.open(dbPath())
    try {
      return await verifyAuditLog(storage, owner.publicKeyHex)
    } finally {
      await storage.close()
    }
  }

  async function assertFirstBad (seq: number, reason: string): Promise<void> {
    const result = await verify()
    assert.equal(result.ok, false, JSON.stringify(result))
    if (result.ok) return
    assert.equal(result.reason, reason, result.message)
    assert.equal(result.firstBadSeq, seq, result.message)
  }

  it('verifies the untouched log', async () => {
    const result = await verify()
    assert.equal(result.ok, true)
    assert.equal(result.ok && result.count, ENTRIES)
  })

  it('catches a modified field', async () => {
    await tamper(async (db) => db.put(keyOf(4), encodeStored({ ...await read(db, 4), decision: 'allow' })))
    await assertFirstBad(4, 'hash-mismatch')
  })

  it('catches a modified field whose hash was recomputed but not re-signed', async () => {
    await tamper(async (db) => db.put(keyOf(4), encodeStored(forge({ ...await read(db, 4), org: 'org-evil' }))))
    await assertFirstBad(4, 'bad-signature')
  })

  it('catches a garbled entry', async () => {
    await tamper(async (db) => db.put(keyOf(5), Uint8Array.from([0xa1, 0x61])))
    await assertFirstBad(5, 'malformed')
  })

  it('catches a deleted entry in the middle', async () => {
    await tamper(async (db) => db.del(keyOf(6)))
    await assertFirstBad(6, 'seq-gap')
  })

  it('catches a deleted last entry, and the log refuses to append after it', async () => {
    await tamper(async (db) => db.del(keyOf(ENTRIES)))
    await assertFirstBad(ENTRIES, 'head-mismatch')
    const storage = await LevelStorage.open(dbPath())
    try {
      const log = await AuditLog.open({ storage, signer: owner, clock: manualClock() })
      await assert.rejects(log.append(sampleInput(0)), (err: unknown) => err instanceof FedmeshError && err.code === 'audit-head-mismatch')
    } finally {
      await storage.close()
    }
  })

  it('cannot see a truncated tail whose head record was rewritten to match (the limit of a local log)', async () => {
    await tamper(async (db) => {
      await db.del(keyOf(ENTRIES))
      await writeHead(db, await read(db, ENTRIES - 1))
    })
    // Undetectable from the log alone; anchoring the head with peers (PBFT) closes this gap.
    const result = await verify()
    assert.deepEqual(result.ok && result.count, ENTRIES - 1)
  })

  it('catches a tampered head record', async () => {
    await tamper(async (db) => db.put(HEAD_KEY, encode({ seq: ENTRIES, hash: 'ee'.repeat(32) })))
    await assertFirstBad(ENTRIES, 'head-mismatch')
  })

  it('catches two swapped entries', async () => {
    await tamper(async (db) => {
      const [three, seven] = [await read(db, 3), await read(db, 7)]
      await db.batch([{ type: 'put', key: keyOf(3), value: encodeStored(seven) }, { type: 'put', key: keyOf(7), value: encodeStored(three) }])
    })
    await assertFirstBad(3, 'seq-mismatch')
  })

  it('catches swapped entries whose seq fields were rewritten', async () => {
    await tamper(async (db) => {
      const [three, seven] = [await read(db, 3), await read(db, 7)]
      await db.batch([{ type: 'put', key: keyOf(3), value: encodeStored({ ...seven, seq: 3 }) }, { type: 'put', key: keyOf(7), value: encodeStored({ ...three, seq: 7 }) }])
    })
    await assertFirstBad(3, 'prev-hash-mismatch')
  })

  it('catches an appended entry correctly hashed and chained but signed by another key', async () => {
    await tamper(async (db) => {
      const last = await read(db, ENTRIES)
      const forged = forge({ ...last, seq: ENTRIES + 1, prevHash: last.hash, decision: 'allow' }, attacker)
      await db.put(keyOf(ENTRIES + 1), encodeStored(forged))
      await writeHead(db, forged)
    })
    await assertFirstBad(ENTRIES + 1, 'bad-signature')
  })

  it('catches an inserted entry re-signed under the forger\'s own key', async () => {
    await tamper(async (db) => {
      // Shift 5..10 up by one, then forge a fully self-consistent entry 5 by the attacker.
      for (let seq = ENTRIES; seq >= 5; seq--) await db.put(keyOf(seq + 1), (await db.get(keyOf(seq)))!)
      const four = await read(db, 4)
      const forged = forge({ ...four, seq: 5, prevHash: four.hash, actor: attacker.publicKeyHex }, attacker)
      await db.put(keyOf(5), encodeStored(forged))
    })
    await assertFirstBad(5, 'foreign-actor')
  })

  it('catches a whole chain re-signed by another key', async () => {
    await tamper(async (db) => {
      let prevHash = (await read(db, 1)).prevHash
      let last: Raw | undefined
      for (let seq = 1; seq <= ENTRIES; seq++) {
        last = forge({ ...await read(db, seq), actor: attacker.publicKeyHex, prevHash }, attacker)
        prevHash = last.hash
        await db.put(keyOf(seq), encodeStored(last))
      }
      await writeHead(db, last!)
    })
    await assertFirstBad(1, 'foreign-actor')
  })

  it('catches an inserted entry with a bad hash', async () => {
    await tamper(async (db) => {
      const last = await read(db, ENTRIES)
      const forged = { ...forge({ ...last, seq: ENTRIES + 1, prevHash: last.hash }, owner), hash: 'ab'.repeat(32) }
      await db.put(keyOf(ENTRIES + 1), encodeStored(forged))
      await writeHead(db, forged)
    })
    await assertFirstBad(ENTRIES + 1, 'hash-mismatch')
  })

  it('catches a foreign key among the entries', async () => {
    await tamper(async (db) => db.put(`${keyOf(3)}x`, encode({ seq: 4 })))
    await assertFirstBad(4, 'unexpected-key')
  })
})

import assert from 'node:assert/strict'
import type { Clock } from '../../base/clock.js'
import { decodeCanonical, encodeCanonical } from '../../base/codec.js'
import { fromHex, toHex } from '../../base/bytes.js'
import { type AsyncSigner, type Signer } from '../../base/ed25519.js'
import type { BatchOp, Storage } from '../../base/storage.js'
import {
  AUDIT_FIELDS_BYTES_MAX, AuditError, GENESIS_HASH, auditInputFields, decodeStoredAuditEntry, encodeAuditFields,
  encodeStoredAuditEntry, entryProblem, hashAuditFieldsBytes, type AuditEntry, type AuditFields, type AuditInput
} from './audit-entry.js'

export * from './audit-entry.js'

// The append-only, hash-chained, signed audit log. Entries live at `audit/<20-digit seq>`; the head
// record `audit/head` ({seq, hash} of the last entry) is written in the same synced batch, so a
// truncated, extended or rewritten tail is caught. 'h' sorts after every digit: one forward scan of
// `audit/` sees all entries and then the head, from one consistent snapshot.
//
// Group commit: append() hashes and chains the entry at once, in call order, and queues it; one
// writer drains the queue in batches of at most batchEntriesMax entries, each signed (on the thread
// pool with an AsyncSigner: signing is most of the cost) and then written in one synced batch.
// Appends that arrive while a batch is written form the next batch, which is signed meanwhile;
// writes stay strictly in order. A failed sign or write poisons the log (later entries were chained
// on the lost ones): every waiting and later append rejects until the log is reopened.

export const AUDIT_PREFIX = 'audit/'
export const AUDIT_HEAD_KEY = 'audit/head'
export const AUDIT_BATCH_ENTRIES_MAX_DEFAULT = 512
export const AUDIT_QUEUE_ENTRIES_MAX_DEFAULT = 16_384
export const AUDIT_TAIL_ENTRIES_MAX = 10_000
const ENTRY_KEY_PATTERN = /^audit\/(\d{20})$/

export function auditEntryKey (seq: number): string {
  assert.ok(Number.isSafeInteger(seq) && seq >= 0)
  return AUDIT_PREFIX + String(seq).padStart(20, '0')
}

export interface AuditHead { seq: number, hash: string }

export type AuditVerifyFailure =
  | 'malformed' | 'unexpected-key' | 'seq-mismatch' | 'seq-gap' | 'prev-hash-mismatch' | 'hash-mismatch'
  | 'foreign-actor' | 'bad-signature' | 'head-malformed' | 'head-missing' | 'head-mismatch'

export type AuditVerifyResult =
  | { ok: true, count: number, headHash: string }
  | { ok: false, firstBadSeq: number, reason: AuditVerifyFailure, message: string }

export interface AuditLogInit {
  storage: Storage
  /** The node's key; an AsyncSigner (NodeIdentity is one) signs batches off the event loop. */
  signer: Signer | AsyncSigner
  clock: Clock
  batchEntriesMax?: number
  queueEntriesMax?: number
}

interface Pending {
  fields: AuditFields
  fieldsBytes: Uint8Array
  hash: string
  resolve: (entry: AuditEntry) => void
  reject: (err: unknown) => void
}

export class AuditLog {
  readonly ownerHex: string
  readonly #storage: Storage
  readonly #signAsync: (message: Uint8Array) => Promise<Uint8Array>
  readonly #clock: Clock
  readonly #batchEntriesMax: number
  readonly #queueEntriesMax: number
  #queue: Pending[] = []
  #inFlightCount = 0
  #writer: Promise<void> | undefined
  #failure: AuditError | undefined
  #closed = false
  #lastSeq: number
  #lastHash: string

  private constructor (init: AuditLogInit, head: AuditHead, failure: AuditError | undefined) {
    this.#storage = init.storage
    const signer = init.signer
    this.#signAsync = 'signAsync' in signer ? async (message) => await signer.signAsync(message) : async (message) => signer.sign(message)
    this.#clock = init.clock
    this.ownerHex = toHex(init.signer.publicKey)
    this.#batchEntriesMax = init.batchEntriesMax ?? AUDIT_BATCH_ENTRIES_MAX_DEFAULT
    this.#queueEntriesMax = init.queueEntriesMax ?? AUDIT_QUEUE_ENTRIES_MAX_DEFAULT
    assert.ok(Number.isSafeInteger(this.#batchEntriesMax) && this.#batchEntriesMax >= 1)
    assert.ok(Number.isSafeInteger(this.#queueEntriesMax) && this.#queueEntriesMax >= 1)
    this.#lastSeq = head.seq
    this.#lastHash = head.hash
    this.#failure = failure
  }

  /**
   * Opens the log and resumes its chain from the head record. A head that does not match the last
   * entry does not fail the open (verify() and reads still work), but every append rejects.
   */
  static async open (init: AuditLogInit): Promise<AuditLog> {
    const ownerHex = toHex(init.signer.publicKey)
    let resumed: AuditHead = { seq: 0, hash: GENESIS_HASH }
    let problem: { code: 'audit-head-mismatch' | 'audit-owner-mismatch', message: string } | undefined
    try {
      resumed = await readHead(init.storage) ?? resumed
      problem = resumeProblem(resumed, await lastEntry(init.storage), ownerHex)
    } catch (err) {
      if (!(err instanceof AuditError)) throw err
      problem = { code: 'audit-head-mismatch', message: `${err.message}; run verify` }
    }
    const failure = problem === undefined ? undefined : new AuditError(problem.code, `refusing to append to the audit log: ${problem.message}`)
    return new AuditLog(init, resumed, failure)
  }

  /** The last appended entry (durable or still queued): its seq and hash. */
  get head (): AuditHead {
    return { seq: this.#lastSeq, hash: this.#lastHash }
  }

  /** Chains the entry now, in call order; resolves once it is durably written (synced). */
  append (input: AuditInput): Promise<AuditEntry> {
    try {
      const pending = this.#enqueue(input)
      if (this.#writer === undefined) this.#writer = this.#drain()
      return pending
    } catch (err) {
      return Promise.reject(err)
    }
  }

  async verify (): Promise<AuditVerifyResult> {
    return await verifyAuditLog(this.#storage, this.ownerHex)
  }

  tail (count: number): AsyncIterable<AuditEntry> {
    return auditTail(this.#storage, count)
  }

  exportSince (from: AuditFrom): AsyncIterable<AuditEntry> {
    return auditSince(this.#storage, from)
  }

  /** Refuses new appends and waits for queued ones to be written. Does not close the storage. */
  async close (): Promise<void> {
    this.#closed = true
    await this.#writer
  }

  #enqueue (input: AuditInput): Promise<AuditEntry> {
    if (this.#closed) throw new AuditError('audit-closed', 'the audit log is closed')
    if (this.#failure !== undefined) throw this.#failure
    if (this.#queue.length + this.#inFlightCount >= this.#queueEntriesMax) {
      throw new AuditError('audit-queue-full', `audit queue holds ${this.#queueEntriesMax} entries`)
    }
    const fields: AuditFields = {
      seq: this.#lastSeq + 1,
      timeMs: wallMsNow(this.#clock),
      actor: this.ownerHex,
      ...auditInputFields(input),
      prevHash: this.#lastHash
    }
    const fieldsBytes = encodeAuditFields(fields)
    if (fieldsBytes.length > AUDIT_FIELDS_BYTES_MAX) {
      throw new AuditError('audit-input-invalid', `entry of ${fieldsBytes.length} bytes exceeds ${AUDIT_FIELDS_BYTES_MAX}`)
    }
    const hash = hashAuditFieldsBytes(fieldsBytes)
    this.#lastSeq = fields.seq
    this.#lastHash = hash
    return new Promise<AuditEntry>((resolve, reject) => {
      this.#queue.push({ fields, fieldsBytes, hash, resolve, reject })
    })
  }

  async #drain (): Promise<void> {
    // Yield once so that appends issued in the same turn join the first batch.
    await Promise.resolve()
    let written: Promise<void> = Promise.resolve()
    for (;;) {
      if (this.#queue.length === 0) {
        await written
        if (this.#queue.length === 0) break
      }
      const batch = this.#queue.splice(0, this.#batchEntriesMax)
      this.#inFlightCount += batch.length
      const signing = this.#signBatch(batch)
      const previous = written
      written = this.#commit(previous, batch, signing)
      // Two batches in flight at most: this one is signed while the previous one is written.
      await signing.catch(() => undefined)
      await previous
    }
    this.#writer = undefined
  }

  async #signBatch (batch: Pending[]): Promise<Uint8Array[]> {
    return await Promise.all(batch.map(async (p) => await this.#signAsync(fromHex(p.hash))))
  }

  /** Writes batch after the previous one is durable; never rejects (failures go to the appenders). */
  async #commit (previous: Promise<void>, batch: Pending[], signing: Promise<Uint8Array[]>): Promise<void> {
    try {
      await previous
      if (this.#failure !== undefined) throw this.#failure
      const entries = await this.#writeBatch(batch, await signing)
      batch.forEach((p, i) => p.resolve(entries[i]!))
    } catch (err) {
      this.#fail(batch, err)
    } finally {
      this.#inFlightCount -= batch.length
    }
  }

  async #writeBatch (batch: Pending[], sigs: Uint8Array[]): Promise<AuditEntry[]> {
    assert.equal(sigs.length, batch.length)
    const ops: BatchOp[] = batch.map((p, i) => ({
      type: 'put',
      key: auditEntryKey(p.fields.seq),
      value: encodeStoredAuditEntry(p.fieldsBytes, p.hash, sigs[i]!)
    }))
    const last = batch[batch.length - 1]!
    ops.push({ type: 'put', key: AUDIT_HEAD_KEY, value: encodeHead({ seq: last.fields.seq, hash: last.hash }) })
    await this.#storage.batch(ops)
    return batch.map((p, i) => ({ ...p.fields, hash: p.hash, sig: toHex(sigs[i]!) }))
  }

  #fail (batch: Pending[], err: unknown): void {
    this.#failure ??= new AuditError('audit-write-failed', `audit write failed; reopen the log: ${(err as Error).message}`, { cause: err })
    const lost = [...batch, ...this.#queue.splice(0)]
    for (const p of lost) p.reject(this.#failure)
  }
}

export type AuditFrom = { seq: number } | { timeMs: number }

/**
 * Streams the whole log and checks every link: key and seq contiguous from 1, prevHash, hash,
 * actor = owner, signature, and finally the head record. Names the first bad sequence number.
 */
export async function verifyAuditLog (storage: Storage, ownerHex: string): Promise<AuditVerifyResult> {
  let previous: AuditHead = { seq: 0, hash: GENESIS_HASH }
  const bad = (firstBadSeq: number, reason: AuditVerifyFailure, message: string): AuditVerifyResult =>
    ({ ok: false, firstBadSeq, reason, message })
  for await (const [key, bytes] of storage.iterate(AUDIT_PREFIX)) {
    const expectedSeq = previous.seq + 1
    if (key === AUDIT_HEAD_KEY) return checkHead(bytes, previous)
    const keySeq = entryKeySeq(key)
    if (keySeq === undefined) return bad(expectedSeq, 'unexpected-key', `unexpected key ${JSON.stringify(key)} in the audit log`)
    if (keySeq !== expectedSeq) return bad(expectedSeq, 'seq-gap', `entry ${expectedSeq} is missing (next key is ${keySeq})`)
    let stored: { entry: AuditEntry, fieldsBytes: Uint8Array }
    try {
      stored = decodeStoredAuditEntry(bytes)
    } catch (err) {
      return bad(keySeq, 'malformed', (err as Error).message)
    }
    const { entry, fieldsBytes } = stored
    if (entry.seq !== keySeq) return bad(keySeq, 'seq-mismatch', `key ${keySeq} holds entry ${entry.seq}`)
    if (entry.prevHash !== previous.hash) return bad(keySeq, 'prev-hash-mismatch', `entry ${keySeq} does not chain on entry ${previous.seq}`)
    const problem = entryProblem(entry, ownerHex, fieldsBytes)
    if (problem !== undefined) return bad(keySeq, problem, `entry ${keySeq}: ${problem}`)
    previous = { seq: entry.seq, hash: entry.hash }
  }
  if (previous.seq === 0) return { ok: true, count: 0, headHash: GENESIS_HASH }
  return bad(previous.seq, 'head-missing', `the head record is missing after entry ${previous.seq}`)
}

function checkHead (bytes: Uint8Array, last: AuditHead): AuditVerifyResult {
  let head: AuditHead
  try {
    head = decodeHead(bytes)
  } catch (err) {
    return { ok: false, firstBadSeq: last.seq, reason: 'head-malformed', message: (err as Error).message }
  }
  if (head.seq === last.seq && head.hash === last.hash) return { ok: true, count: last.seq, headHash: last.hash }
  // A head past the last entry means entries were cut off; behind it, entries were added after it.
  const firstBadSeq = head.seq === last.seq ? last.seq : Math.min(head.seq, last.seq) + 1
  return {
    ok: false,
    firstBadSeq,
    reason: 'head-mismatch',
    message: `head record says entry ${head.seq} (${head.hash.slice(0, 12)}…) but the log ends at entry ${last.seq} (${last.hash.slice(0, 12)}…)`
  }
}

/** The last count entries (at most AUDIT_TAIL_ENTRIES_MAX), oldest first. */
export async function * auditTail (storage: Storage, count: number): AsyncIterable<AuditEntry> {
  if (!Number.isSafeInteger(count) || count < 0 || count > AUDIT_TAIL_ENTRIES_MAX) {
    throw new AuditError('audit-input-invalid', `tail count must be an integer in 0..${AUDIT_TAIL_ENTRIES_MAX}`)
  }
  const newestFirst: AuditEntry[] = []
  for await (const [key, bytes] of storage.iterate(AUDIT_PREFIX, { reverse: true, limit: count + 1 })) {
    if (entryKeySeq(key) !== undefined && newestFirst.length < count) newestFirst.push(decodeStoredAuditEntry(bytes).entry)
  }
  yield * newestFirst.reverse()
}

/** Entries from a seq on, or (scanning the whole log: wall clocks may step back) from a time on. */
export async function * auditSince (storage: Storage, from: AuditFrom): AsyncIterable<AuditEntry> {
  const value = 'seq' in from ? from.seq : from.timeMs
  if (!Number.isSafeInteger(value) || value < 0) throw new AuditError('audit-input-invalid', 'since must be a non-negative integer')
  const gt = 'seq' in from ? auditEntryKey(Math.max(from.seq - 1, 0)) : undefined
  const options = gt === undefined ? {} : { gt }
  for await (const [key, bytes] of storage.iterate(AUDIT_PREFIX, options)) {
    if (entryKeySeq(key) === undefined) continue
    const { entry } = decodeStoredAuditEntry(bytes)
    if ('timeMs' in from && entry.timeMs < from.timeMs) continue
    yield entry
  }
}

function wallMsNow (clock: Clock): number {
  const timeMs = Math.floor(clock.wallMs())
  assert.ok(Number.isSafeInteger(timeMs) && timeMs >= 0, 'wall clock before the epoch')
  return timeMs
}

function entryKeySeq (key: string): number | undefined {
  const digits = ENTRY_KEY_PATTERN.exec(key)?.[1]
  if (digits === undefined) return undefined
  const seq = Number(digits)
  return Number.isSafeInteger(seq) ? seq : undefined
}

async function readHead (storage: Storage): Promise<AuditHead | undefined> {
  const bytes = await storage.get(AUDIT_HEAD_KEY)
  return bytes === undefined ? undefined : decodeHead(bytes)
}

async function lastEntry (storage: Storage): Promise<LastEntry | undefined> {
  for await (const [key, bytes] of storage.iterate(AUDIT_PREFIX, { reverse: true, limit: 2 })) {
    const keySeq = entryKeySeq(key)
    if (keySeq !== undefined) return { keySeq, ...decodeStoredAuditEntry(bytes) }
  }
  return undefined
}

interface LastEntry { keySeq: number, entry: AuditEntry, fieldsBytes: Uint8Array }

function resumeProblem (head: AuditHead, last: LastEntry | undefined, ownerHex: string):
{ code: 'audit-head-mismatch' | 'audit-owner-mismatch', message: string } | undefined {
  if (last === undefined) {
    return head.seq === 0 ? undefined : { code: 'audit-head-mismatch', message: `head says entry ${head.seq} but the log is empty` }
  }
  const { keySeq, entry, fieldsBytes } = last
  if (head.seq !== keySeq || head.seq !== entry.seq || head.hash !== entry.hash || hashAuditFieldsBytes(fieldsBytes) !== entry.hash) {
    return { code: 'audit-head-mismatch', message: `head (entry ${head.seq}) does not match the last stored entry (key ${keySeq}); run verify` }
  }
  if (entry.actor !== ownerHex) {
    return { code: 'audit-owner-mismatch', message: `the log was written by ${entry.actor}, not by this node (${ownerHex})` }
  }
  return undefined
}

function encodeHead (head: AuditHead): Uint8Array {
  return encodeCanonical(head)
}

function decodeHead (bytes: Uint8Array): AuditHead {
  const value = decodeCanonical(bytes, (reason) => new AuditError('audit-entry-malformed', `audit head: ${reason}`))
  const head = value as Partial<AuditHead> | null
  if (typeof head !== 'object' || head === null || Object.keys(head).length !== 2 ||
      !Number.isSafeInteger(head.seq) || (head.seq as number) < 0 ||
      typeof head.hash !== 'string' || !/^[0-9a-f]{64}$/.test(head.hash)) {
    throw new AuditError('audit-entry-malformed', 'audit head is not {seq, hash}')
  }
  return { seq: head.seq as number, hash: head.hash }
}

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { decodeCanonical, encodeCanonical } from '../../base/codec.js'
import { FedmeshError } from '../../base/errors.js'
import { fromHex, toHex } from '../../base/bytes.js'
import { verify } from '../../base/ed25519.js'

// One audit entry: its fields, their bounds, its hash and signature. Pure (no I/O, no clock).
// fieldsBytes = canonical CBOR of every field but hash and sig; hash = sha256(AUDIT_HASH_DOMAIN ||
// fieldsBytes); sig = ed25519(actor key, hash bytes). An entry is stored as the CBOR map
// {fields: fieldsBytes, hash, sig}, so verifying hashes the very bytes that were signed. The JSON
// form carries the same fields as numbers and hex strings: anyone holding an export and the node's
// public key can re-encode and re-check it.

export const AUDIT_DECISIONS = ['accept', 'reject', 'allow', 'deny', 'info'] as const
export type AuditDecision = typeof AUDIT_DECISIONS[number]

export const GENESIS_HASH = '0'.repeat(64)
export const AUDIT_FIELDS_BYTES_MAX = 8192
export const AUDIT_DETAIL_KEYS_MAX = 16
export const AUDIT_DETAIL_VALUE_CHARS_MAX = 256
export const AUDIT_ORG_CHARS_MAX = 128
const AUDIT_HASH_DOMAIN = new TextEncoder().encode('fedmesh/audit/v1\n')
const ACTION_PATTERN = /^[a-z][a-z0-9_.-]{0,63}$/
const DETAIL_KEY_PATTERN = /^[A-Za-z][A-Za-z0-9_.-]{0,31}$/
const HEX32_PATTERN = /^[0-9a-f]{64}$/
const HEX64_PATTERN = /^[0-9a-f]{128}$/

export type AuditErrorCode =
  | 'audit-input-invalid' | 'audit-entry-malformed' | 'audit-queue-full' | 'audit-head-mismatch'
  | 'audit-owner-mismatch' | 'audit-write-failed' | 'audit-closed'

export class AuditError extends FedmeshError {
  constructor (code: AuditErrorCode, message: string, options?: { cause: unknown }) {
    super(code, message)
    this.name = 'AuditError'
    if (options !== undefined) this.cause = options.cause
  }
}

export interface AuditEntry {
  seq: number
  timeMs: number
  /** Public key (hex) of the node that wrote and signed the entry. */
  actor: string
  /** Public key (hex) of the peer involved, or ''. */
  peer: string
  org: string
  action: string
  decision: AuditDecision
  /** sha256 (hex) of the sanitized content, or '': the content itself is never stored. */
  digest: string
  detail: Record<string, string>
  prevHash: string
  hash: string
  sig: string
}

export type AuditFields = Omit<AuditEntry, 'hash' | 'sig'>

/** What a caller records; the log adds seq, time, actor and the chain. */
export interface AuditInput {
  action: string
  decision: AuditDecision
  peer?: string
  org?: string
  /** The sanitized content to fingerprint; or give its digest. */
  content?: Uint8Array
  digest?: string
  detail?: Record<string, string>
}

export function sha256Hex (bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

export function encodeAuditFields (fields: AuditFields): Uint8Array {
  return encodeCanonical(canonicalFields(fields))
}

export function hashAuditFieldsBytes (fieldsBytes: Uint8Array): string {
  return createHash('sha256').update(AUDIT_HASH_DOMAIN).update(fieldsBytes).digest('hex')
}

/** Validates the caller's input and returns the fields it contributes (bounded, copied). */
export function auditInputFields (input: AuditInput): Pick<AuditFields, 'peer' | 'org' | 'action' | 'decision' | 'digest' | 'detail'> {
  if (input.content !== undefined && input.digest !== undefined) invalidInput('give content or digest, not both')
  const digest = input.content !== undefined ? sha256Hex(input.content) : input.digest ?? ''
  const fields = {
    peer: input.peer ?? '',
    org: input.org ?? '',
    action: input.action,
    decision: input.decision,
    digest,
    detail: { ...input.detail }
  }
  const problem = fieldsProblem(fields)
  if (problem !== undefined) invalidInput(problem)
  return fields
}

/** The stored form of a signed entry. */
export function encodeStoredAuditEntry (fieldsBytes: Uint8Array, hash: string, sig: Uint8Array): Uint8Array {
  assert.ok(fieldsBytes.length <= AUDIT_FIELDS_BYTES_MAX)
  assert.equal(sig.length, 64)
  return encodeCanonical({ fields: fieldsBytes, hash: fromHex(hash), sig })
}

/** Decodes a stored entry; anything that is not a well-formed entry is 'audit-entry-malformed'. */
export function decodeStoredAuditEntry (bytes: Uint8Array): { entry: AuditEntry, fieldsBytes: Uint8Array } {
  if (bytes.length > AUDIT_FIELDS_BYTES_MAX + 256) malformed(`stored entry of ${bytes.length} bytes is too large`)
  const stored = decodeOrMalformed(bytes) as Record<string, unknown> | null
  if (typeof stored !== 'object' || stored === null || Object.keys(stored).sort().join() !== 'fields,hash,sig') {
    malformed('stored entry is not {fields, hash, sig}')
  }
  const { fields: fieldsBytes, hash, sig } = stored
  if (!(fieldsBytes instanceof Uint8Array) || !(hash instanceof Uint8Array) || !(sig instanceof Uint8Array)) {
    malformed('stored entry fields, hash and sig must be byte strings')
  }
  const fields = decodeOrMalformed(fieldsBytes)
  if (typeof fields !== 'object' || fields === null) malformed('entry fields are not a map')
  return { entry: parseAuditEntry({ ...fields, hash: toHex(hash), sig: toHex(sig) }), fieldsBytes }
}

function decodeOrMalformed (bytes: Uint8Array): unknown {
  try {
    return decodeCanonical(bytes)
  } catch (err) {
    malformed((err as Error).message)
  }
}

/** Validates an entry from outside (decoded CBOR or parsed JSON) and returns a clean copy. */
export function parseAuditEntry (value: unknown): AuditEntry {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) malformed('entry is not a map')
  const raw = value as Record<string, unknown>
  const keys = Object.keys(raw).sort()
  const expected = ['action', 'actor', 'decision', 'detail', 'digest', 'hash', 'org', 'peer', 'prevHash', 'seq', 'sig', 'timeMs']
  if (keys.join() !== expected.join()) malformed(`entry fields are [${keys.join(', ')}]`)
  const { seq, timeMs, actor, hash, sig, prevHash, detail } = raw
  if (!Number.isSafeInteger(seq) || (seq as number) < 1) malformed('seq is not a positive integer')
  if (!Number.isSafeInteger(timeMs) || (timeMs as number) < 0) malformed('timeMs is not a non-negative integer')
  if (typeof actor !== 'string' || !HEX32_PATTERN.test(actor)) malformed('actor is not a 32-byte hex key')
  if (typeof prevHash !== 'string' || !HEX32_PATTERN.test(prevHash)) malformed('prevHash is not a 32-byte hex hash')
  if (typeof hash !== 'string' || !HEX32_PATTERN.test(hash)) malformed('hash is not a 32-byte hex hash')
  if (typeof sig !== 'string' || !HEX64_PATTERN.test(sig)) malformed('sig is not a 64-byte hex signature')
  if (typeof detail !== 'object' || detail === null || Array.isArray(detail)) malformed('detail is not a map')
  const entry = { ...raw, detail: { ...detail } } as AuditEntry
  const problem = fieldsProblem(entry)
  if (problem !== undefined) malformed(problem)
  return entry
}

/**
 * Why an entry does not check out against its owner's key, or undefined if it does. Stored
 * entries pass the bytes that were hashed; entries from JSON are re-encoded canonically.
 */
export function entryProblem (entry: AuditEntry, ownerHex: string, fieldsBytes = encodeAuditFields(entry)):
'hash-mismatch' | 'foreign-actor' | 'bad-signature' | undefined {
  if (hashAuditFieldsBytes(fieldsBytes) !== entry.hash) return 'hash-mismatch'
  if (entry.actor !== ownerHex) return 'foreign-actor'
  if (!verify(fromHex(entry.actor), fromHex(entry.hash), fromHex(entry.sig))) return 'bad-signature'
  return undefined
}

/** The JSON form: one line, fields in a fixed order. */
export function auditEntryJson (entry: AuditEntry): string {
  return JSON.stringify({ ...canonicalFields(entry), hash: entry.hash, sig: entry.sig })
}

function canonicalFields (fields: AuditFields): AuditFields {
  const { seq, timeMs, actor, peer, org, action, decision, digest, detail, prevHash } = fields
  return { seq, timeMs, actor, peer, org, action, decision, digest, detail, prevHash }
}

function fieldsProblem (fields: Pick<AuditFields, 'peer' | 'org' | 'action' | 'decision' | 'digest' | 'detail'>): string | undefined {
  const { peer, org, action, decision, digest, detail } = fields
  if (typeof peer !== 'string' || (peer !== '' && !HEX32_PATTERN.test(peer))) return 'peer must be \'\' or a 32-byte lowercase hex key'
  if (typeof org !== 'string' || org.length > AUDIT_ORG_CHARS_MAX) return `org must be a string of at most ${AUDIT_ORG_CHARS_MAX} characters`
  if (typeof action !== 'string' || !ACTION_PATTERN.test(action)) return `action ${JSON.stringify(action)} must match ${ACTION_PATTERN}`
  if (!(AUDIT_DECISIONS as readonly unknown[]).includes(decision)) return `decision must be one of ${AUDIT_DECISIONS.join(', ')}`
  if (typeof digest !== 'string' || (digest !== '' && !HEX32_PATTERN.test(digest))) return 'digest must be \'\' or a lowercase hex sha256'
  const entries = Object.entries(detail)
  if (entries.length > AUDIT_DETAIL_KEYS_MAX) return `detail has more than ${AUDIT_DETAIL_KEYS_MAX} keys`
  for (const [key, value] of entries) {
    if (!DETAIL_KEY_PATTERN.test(key)) return `detail key ${JSON.stringify(key)} must match ${DETAIL_KEY_PATTERN}`
    if (typeof value !== 'string' || value.length > AUDIT_DETAIL_VALUE_CHARS_MAX) {
      return `detail.${key} must be a string of at most ${AUDIT_DETAIL_VALUE_CHARS_MAX} characters`
    }
  }
  return undefined
}

function invalidInput (message: string): never {
  throw new AuditError('audit-input-invalid', message)
}

function malformed (message: string): never {
  throw new AuditError('audit-entry-malformed', message)
}

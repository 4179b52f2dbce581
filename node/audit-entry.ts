import { createHash } from 'node:crypto'
import { decodeCanonical, encodeCanonical } from './codec.js'
import { FedmeshError } from './errors.js'
import { fromHex, toHex, verify, type Signer } from './identity.js'

// One audit entry: its fields, their bounds, its hash and signature. Pure (no I/O, no clock).
// hash = sha256(AUDIT_HASH_DOMAIN || canonical CBOR of every field but hash and sig), and
// sig = ed25519(actor key, hash bytes). The JSON form carries exactly these fields as numbers and
// hex strings, so anyone holding an export and the node's public key can re-check it.

export const AUDIT_DECISIONS = ['accept', 'reject', 'allow', 'deny', 'info'] as const
export type AuditDecision = typeof AUDIT_DECISIONS[number]

export const GENESIS_HASH = '0'.repeat(64)
export const AUDIT_ENTRY_BYTES_MAX = 8192
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

export function hashAuditFields (fields: AuditFields): string {
  return createHash('sha256').update(AUDIT_HASH_DOMAIN).update(encodeCanonical(canonicalFields(fields))).digest('hex')
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

export function sealAuditEntry (fields: AuditFields, signer: Signer): AuditEntry {
  const hash = hashAuditFields(fields)
  const sig = toHex(signer.sign(fromHex(hash)))
  return { ...canonicalFields(fields), hash, sig }
}

export function encodeAuditEntry (entry: AuditEntry): Uint8Array {
  const bytes = encodeCanonical(entry)
  if (bytes.length > AUDIT_ENTRY_BYTES_MAX) invalidInput(`entry of ${bytes.length} bytes exceeds ${AUDIT_ENTRY_BYTES_MAX}`)
  return bytes
}

/** Decodes a stored entry; anything that is not a well-formed entry is 'audit-entry-malformed'. */
export function decodeAuditEntry (bytes: Uint8Array): AuditEntry {
  if (bytes.length > AUDIT_ENTRY_BYTES_MAX) malformed(`entry of ${bytes.length} bytes exceeds ${AUDIT_ENTRY_BYTES_MAX}`)
  let value: unknown
  try {
    value = decodeCanonical(bytes)
  } catch (err) {
    malformed((err as Error).message)
  }
  return parseAuditEntry(value)
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

/** Why a decoded entry does not check out against its owner's key, or undefined if it does. */
export function entrySignatureProblem (entry: AuditEntry, ownerHex: string): 'hash-mismatch' | 'foreign-actor' | 'bad-signature' | undefined {
  if (hashAuditFields(entry) !== entry.hash) return 'hash-mismatch'
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

import { decodeCanonical, encodeCanonical } from './codec.js'
import { FedmeshError } from './errors.js'
import { toHex } from './bytes.js'
import { verify, type Signer } from './ed25519.js'

// Organisation identity. An org is its root ed25519 key; its name is a nickname. The root signs
//   node certificates  CBOR [1, org, rootKey, nodeKey, issuedAtMs, expiresAtMs, signature]
//   join tokens        CBOR [1, org, rootKey, [bootstrap multiaddr...], nonce, expiresAtMs, signature]
// each signature over the canonical CBOR of the same fields with the first replaced by a domain
// string ('fedmesh/cert/v1', 'fedmesh/join/v1'). A join token travels as 'fmjoin1.' + base64url.
export const ORG_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/
export const CERT_TTL_MS_DEFAULT = 365 * 24 * 3600 * 1000
export const JOIN_TTL_MS_DEFAULT = 3600 * 1000
const CERT_DOMAIN = 'fedmesh/cert/v1'
const JOIN_DOMAIN = 'fedmesh/join/v1'
const TOKEN_PREFIX = 'fmjoin1.'
const TOKEN_CHARS_MAX = 4096
const ADDRS_MAX = 8

export type OrgErrorCode = 'cert-malformed' | 'cert-bad-signature' | 'cert-expired' | 'cert-mismatch' | 'token-malformed' | 'token-bad-signature' | 'token-expired' | 'token-reused' | 'token-wrong-org'

export class OrgError extends FedmeshError {
  constructor (code: OrgErrorCode, message: string) {
    super(code, message)
    this.name = 'OrgError'
  }
}

export interface NodeCertificate {
  org: string
  root: Uint8Array
  node: Uint8Array
  issuedAtMs: number
  expiresAtMs: number
  signature: Uint8Array
}

export interface JoinToken {
  org: string
  root: Uint8Array
  addrs: string[]
  nonce: Uint8Array
  expiresAtMs: number
  signature: Uint8Array
}

export function assertOrgName (org: string): void {
  if (!ORG_NAME_PATTERN.test(org)) throw new FedmeshError('bad-org-name', `organisation name '${org}' must match ${ORG_NAME_PATTERN}`)
}

export function issueCertificate (root: Signer, fields: { org: string, node: Uint8Array, issuedAtMs: number, ttlMs?: number }): NodeCertificate {
  assertOrgName(fields.org)
  const unsigned = { org: fields.org, root: root.publicKey, node: fields.node, issuedAtMs: fields.issuedAtMs, expiresAtMs: fields.issuedAtMs + (fields.ttlMs ?? CERT_TTL_MS_DEFAULT) }
  return { ...unsigned, signature: root.sign(certSigningBytes(unsigned)) }
}

export function encodeCertificate (c: NodeCertificate): Uint8Array {
  return encodeCanonical([1, c.org, c.root, c.node, c.issuedAtMs, c.expiresAtMs, c.signature])
}

/** Decodes and checks a certificate: signed by its root, for this node and org, not expired. */
export function verifyCertificate (bytes: Uint8Array, expect: { nowMs: number, node?: Uint8Array, org?: string, root?: Uint8Array }): NodeCertificate {
  const cert = decodeCertificate(bytes)
  if (!signatureVerified(bytes, cert)) throw new OrgError('cert-bad-signature', 'certificate is not signed by its organisation root')
  if (expect.nowMs > cert.expiresAtMs) throw new OrgError('cert-expired', `certificate expired at ${new Date(cert.expiresAtMs).toISOString()}`)
  if (expect.node !== undefined && toHex(expect.node) !== toHex(cert.node)) throw new OrgError('cert-mismatch', 'certificate is for another node key')
  if (expect.org !== undefined && expect.org !== cert.org) throw new OrgError('cert-mismatch', `certificate is for org '${cert.org}', not '${expect.org}'`)
  if (expect.root !== undefined && toHex(expect.root) !== toHex(cert.root)) throw new OrgError('cert-mismatch', 'certificate chains to another organisation root')
  return cert
}

// Every announcement and PBFT message carries the sender's certificate: remember the byte strings
// whose root signature already verified (bounded, oldest forgotten first), so each is checked once.
const VERIFIED_CERTIFICATES_MAX = 4096
const verifiedCertificates = new Set<string>()

function signatureVerified (bytes: Uint8Array, cert: NodeCertificate): boolean {
  const id = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
  if (verifiedCertificates.has(id)) return true
  if (!verify(cert.root, certSigningBytes(cert), cert.signature)) return false
  if (verifiedCertificates.size >= VERIFIED_CERTIFICATES_MAX) verifiedCertificates.delete(verifiedCertificates.values().next().value!)
  verifiedCertificates.add(id)
  return true
}

function decodeCertificate (bytes: Uint8Array): NodeCertificate {
  const value = decodeCanonical(bytes, () => new OrgError('cert-malformed', 'certificate is not valid CBOR'))
  if (!Array.isArray(value) || value.length !== 7 || value[0] !== 1) throw new OrgError('cert-malformed', 'certificate must be a CBOR array of 7 fields, version 1')
  const [, org, root, node, issuedAtMs, expiresAtMs, signature] = value as unknown[]
  if (typeof org !== 'string' || !ORG_NAME_PATTERN.test(org) || !isKey(root) || !isKey(node) || !isTime(issuedAtMs) || !isTime(expiresAtMs) ||
    !(signature instanceof Uint8Array) || signature.length !== 64) {
    throw new OrgError('cert-malformed', 'certificate fields have the wrong types or sizes')
  }
  return { org, root, node, issuedAtMs, expiresAtMs, signature }
}

function certSigningBytes (c: Omit<NodeCertificate, 'signature'>): Uint8Array {
  return encodeCanonical([CERT_DOMAIN, c.org, c.root, c.node, c.issuedAtMs, c.expiresAtMs])
}

export function createJoinToken (root: Signer, fields: { org: string, addrs: string[], nonce: Uint8Array, expiresAtMs: number }): string {
  assertOrgName(fields.org)
  const unsigned = { org: fields.org, root: root.publicKey, addrs: fields.addrs.slice(0, ADDRS_MAX), nonce: fields.nonce, expiresAtMs: fields.expiresAtMs }
  const signature = root.sign(joinSigningBytes(unsigned))
  const bytes = encodeCanonical([1, unsigned.org, unsigned.root, unsigned.addrs, unsigned.nonce, unsigned.expiresAtMs, signature])
  return TOKEN_PREFIX + Buffer.from(bytes).toString('base64url')
}

/** Parses a join token and checks it is signed by the root it names and not expired. */
export function parseJoinToken (text: string, nowMs: number): JoinToken {
  const trimmed = text.trim()
  if (!trimmed.startsWith(TOKEN_PREFIX) || trimmed.length > TOKEN_CHARS_MAX) throw new OrgError('token-malformed', `a join token starts with '${TOKEN_PREFIX}' (from fedmesh invite)`)
  const value = decodeCanonical(new Uint8Array(Buffer.from(trimmed.slice(TOKEN_PREFIX.length), 'base64url')), () => new OrgError('token-malformed', 'join token is not valid CBOR'))
  if (!Array.isArray(value) || value.length !== 7 || value[0] !== 1) throw new OrgError('token-malformed', 'join token must hold 7 fields, version 1')
  const [, org, root, addrs, nonce, expiresAtMs, signature] = value as unknown[]
  if (typeof org !== 'string' || !ORG_NAME_PATTERN.test(org) || !isKey(root) || !Array.isArray(addrs) || addrs.length > ADDRS_MAX ||
    !addrs.every((a) => typeof a === 'string' && a.length <= 256) || !(nonce instanceof Uint8Array) || nonce.length !== 16 ||
    !isTime(expiresAtMs) || !(signature instanceof Uint8Array) || signature.length !== 64) {
    throw new OrgError('token-malformed', 'join token fields have the wrong types or sizes')
  }
  const token: JoinToken = { org, root, addrs: addrs as string[], nonce, expiresAtMs, signature }
  if (!verify(root, joinSigningBytes(token), signature)) throw new OrgError('token-bad-signature', 'join token is not signed by the organisation root it names')
  if (nowMs > expiresAtMs) throw new OrgError('token-expired', `join token expired at ${new Date(expiresAtMs).toISOString()}`)
  return token
}

function joinSigningBytes (t: Omit<JoinToken, 'signature'>): Uint8Array {
  return encodeCanonical([JOIN_DOMAIN, t.org, t.root, t.addrs, t.nonce, t.expiresAtMs])
}

function isKey (value: unknown): value is Uint8Array {
  return value instanceof Uint8Array && value.length === 32
}

function isTime (value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

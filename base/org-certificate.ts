import { decodeCanonical, encodeCanonical } from './codec.js'
import { FedmeshError } from './errors.js'
import { toHex } from './bytes.js'
import { verify, type Signer } from './ed25519.js'

// Organisation identity. An org is its root ed25519 key; its name is a nickname. The root signs
//   node certificates  CBOR [1, org, rootKey, nodeKey, issuedAtMs, expiresAtMs, signature]
//   join tokens        CBOR [1, org, rootKey, [bootstrap multiaddr...], nonce, expiresAtMs, signature]
// each signature over the canonical CBOR of the same fields with the first replaced by a domain
// string ('fedmesh/cert/v1', 'fedmesh/join/v1'). A join token travels as 'fmjoin1.' + base64url.
// The root may delegate issuing to a member with an issuer certificate
//   CBOR [1, org, rootKey, issuerKey, issuedAtMs, expiresAtMs, signature] (domain 'fedmesh/issuer/v1'),
// 'fmissuer1.' + base64url on the command line; what that member issues is version 2, signed by
// its key and carrying the issuer certificate, which every verifier checks against the root:
//   node certificates  CBOR [2, org, rootKey, nodeKey, issuedAtMs, expiresAtMs, signature, issuerCert]
//   join tokens        CBOR [2, org, rootKey, [multiaddr...], nonce, expiresAtMs, signature, issuerCert]
// signed over the version 1 fields with the issuer's key appended (domains 'fedmesh/cert/v2', 'fedmesh/join/v2').
export const ORG_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/
export const CERT_TTL_MS_DEFAULT = 365 * 24 * 3600 * 1000
export const JOIN_TTL_MS_DEFAULT = 3600 * 1000
const CERT_DOMAIN = 'fedmesh/cert/v1'
const JOIN_DOMAIN = 'fedmesh/join/v1'
const ISSUER_DOMAIN = 'fedmesh/issuer/v1'
const DELEGATED_CERT_DOMAIN = 'fedmesh/cert/v2'
const DELEGATED_JOIN_DOMAIN = 'fedmesh/join/v2'
const TOKEN_PREFIX = 'fmjoin1.'
const ISSUER_PREFIX = 'fmissuer1.'
const TOKEN_CHARS_MAX = 4096
const ADDRS_MAX = 8

export type OrgErrorCode = 'cert-malformed' | 'cert-bad-signature' | 'cert-expired' | 'cert-mismatch' | 'token-malformed' | 'token-bad-signature' | 'token-expired' | 'token-reused' | 'token-wrong-org' | 'token-wrong-issuer'

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
  /** Present when a member the root delegated to issued it (version 2). */
  issuer?: IssuerCertificate
}

export interface JoinToken {
  org: string
  root: Uint8Array
  addrs: string[]
  nonce: Uint8Array
  expiresAtMs: number
  signature: Uint8Array
  issuer?: IssuerCertificate
}

/** The root's grant to one member key: it may issue node certificates and join tokens for the org. */
export interface IssuerCertificate {
  org: string
  root: Uint8Array
  issuer: Uint8Array
  issuedAtMs: number
  expiresAtMs: number
  signature: Uint8Array
}

/** Who signs certificates and tokens: the root itself, or a delegated member with its issuer certificate. */
export interface Issuer { signer: Signer, delegation?: IssuerCertificate }

export function assertOrgName (org: string): void {
  if (!ORG_NAME_PATTERN.test(org)) throw new FedmeshError('bad-org-name', `organisation name '${org}' must match ${ORG_NAME_PATTERN}`)
}

/** A node certificate from the root (`issuer` a Signer) or from a delegated member; never outlives the delegation. */
export function issueCertificate (issuer: Signer | Issuer, fields: { org: string, node: Uint8Array, issuedAtMs: number, ttlMs?: number }): NodeCertificate {
  assertOrgName(fields.org)
  const { signer, delegation } = 'signer' in issuer ? issuer : { signer: issuer, delegation: undefined }
  const expiresAtMs = Math.min(fields.issuedAtMs + (fields.ttlMs ?? CERT_TTL_MS_DEFAULT), delegation?.expiresAtMs ?? Infinity)
  const unsigned = { org: fields.org, root: delegation?.root ?? signer.publicKey, node: fields.node, issuedAtMs: fields.issuedAtMs, expiresAtMs }
  if (delegation === undefined) return { ...unsigned, signature: signer.sign(certSigningBytes(unsigned)) }
  return { ...unsigned, signature: signer.sign(delegatedSigningBytes(DELEGATED_CERT_DOMAIN, certFields(unsigned), delegation.issuer)), issuer: delegation }
}

export function encodeCertificate (c: NodeCertificate): Uint8Array {
  if (c.issuer !== undefined) return encodeCanonical([2, c.org, c.root, c.node, c.issuedAtMs, c.expiresAtMs, c.signature, encodeIssuerCertificate(c.issuer)])
  return encodeCanonical([1, c.org, c.root, c.node, c.issuedAtMs, c.expiresAtMs, c.signature])
}

/** Decodes and checks a certificate: signed by its root (or by a member the root delegated to), for this node and org, not expired. */
export function verifyCertificate (bytes: Uint8Array, expect: { nowMs: number, node?: Uint8Array, org?: string, root?: Uint8Array }): NodeCertificate {
  const cert = decodeCertificate(bytes)
  if (!signatureVerified(bytes, cert)) throw new OrgError('cert-bad-signature', 'certificate is not signed by its organisation root or a member it delegated to')
  if (expect.nowMs > cert.expiresAtMs) throw new OrgError('cert-expired', `certificate expired at ${new Date(cert.expiresAtMs).toISOString()}`)
  if (cert.issuer !== undefined && expect.nowMs > cert.issuer.expiresAtMs) throw new OrgError('cert-expired', `the delegation behind the certificate expired at ${new Date(cert.issuer.expiresAtMs).toISOString()}`)
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
  if (cert.issuer === undefined ? !verify(cert.root, certSigningBytes(cert), cert.signature) : !delegatedVerified(DELEGATED_CERT_DOMAIN, certFields(cert), cert)) return false
  if (verifiedCertificates.size >= VERIFIED_CERTIFICATES_MAX) verifiedCertificates.delete(verifiedCertificates.values().next().value!)
  verifiedCertificates.add(id)
  return true
}

function decodeCertificate (bytes: Uint8Array): NodeCertificate {
  const value = decodeCanonical(bytes, () => new OrgError('cert-malformed', 'certificate is not valid CBOR'))
  if (!Array.isArray(value) || !((value[0] === 1 && value.length === 7) || (value[0] === 2 && value.length === 8))) {
    throw new OrgError('cert-malformed', 'certificate must be a CBOR array of 7 fields (version 1) or 8 (version 2)')
  }
  const [, org, root, node, issuedAtMs, expiresAtMs, signature, issuer] = value as unknown[]
  if (typeof org !== 'string' || !ORG_NAME_PATTERN.test(org) || !isKey(root) || !isKey(node) || !isTime(issuedAtMs) || !isTime(expiresAtMs) ||
    !(signature instanceof Uint8Array) || signature.length !== 64) {
    throw new OrgError('cert-malformed', 'certificate fields have the wrong types or sizes')
  }
  const cert: NodeCertificate = { org, root, node, issuedAtMs, expiresAtMs, signature }
  if (value[0] === 2) cert.issuer = delegationOf(issuer, org, root, 'cert-malformed')
  return cert
}

function certSigningBytes (c: Omit<NodeCertificate, 'signature'>): Uint8Array {
  return encodeCanonical([CERT_DOMAIN, ...certFields(c)])
}

function certFields (c: Omit<NodeCertificate, 'signature'>): unknown[] {
  return [c.org, c.root, c.node, c.issuedAtMs, c.expiresAtMs]
}

/** The root's grant of the issuer right to `issuer` (a member's node key). */
export function issueIssuerCertificate (root: Signer, fields: { org: string, issuer: Uint8Array, issuedAtMs: number, ttlMs?: number }): IssuerCertificate {
  assertOrgName(fields.org)
  const unsigned = { org: fields.org, root: root.publicKey, issuer: fields.issuer, issuedAtMs: fields.issuedAtMs, expiresAtMs: fields.issuedAtMs + (fields.ttlMs ?? CERT_TTL_MS_DEFAULT) }
  return { ...unsigned, signature: root.sign(issuerSigningBytes(unsigned)) }
}

export function encodeIssuerCertificate (c: IssuerCertificate): Uint8Array {
  return encodeCanonical([1, c.org, c.root, c.issuer, c.issuedAtMs, c.expiresAtMs, c.signature])
}

/** Decodes an issuer certificate and checks the root's signature (expiry and whose it is are the caller's). */
export function decodeIssuerCertificate (bytes: Uint8Array): IssuerCertificate {
  const value = decodeCanonical(bytes, () => new OrgError('cert-malformed', 'issuer certificate is not valid CBOR'))
  if (!Array.isArray(value) || value.length !== 7 || value[0] !== 1) throw new OrgError('cert-malformed', 'issuer certificate must be a CBOR array of 7 fields, version 1')
  const [, org, root, issuer, issuedAtMs, expiresAtMs, signature] = value as unknown[]
  if (typeof org !== 'string' || !ORG_NAME_PATTERN.test(org) || !isKey(root) || !isKey(issuer) || !isTime(issuedAtMs) || !isTime(expiresAtMs) ||
    !(signature instanceof Uint8Array) || signature.length !== 64) {
    throw new OrgError('cert-malformed', 'issuer certificate fields have the wrong types or sizes')
  }
  const cert: IssuerCertificate = { org, root, issuer, issuedAtMs, expiresAtMs, signature }
  if (!verify(root, issuerSigningBytes(cert), signature)) throw new OrgError('cert-bad-signature', 'issuer certificate is not signed by its organisation root')
  return cert
}

/** The issuer certificate as operators pass it around ('fmissuer1.' + base64url). */
export function issuerCertificateText (c: IssuerCertificate): string {
  return ISSUER_PREFIX + Buffer.from(encodeIssuerCertificate(c)).toString('base64url')
}

export function parseIssuerCertificateText (text: string): IssuerCertificate {
  const trimmed = text.trim()
  if (!trimmed.startsWith(ISSUER_PREFIX) || trimmed.length > TOKEN_CHARS_MAX) throw new OrgError('cert-malformed', `an issuer certificate starts with '${ISSUER_PREFIX}' (from fedmesh org delegate)`)
  return decodeIssuerCertificate(new Uint8Array(Buffer.from(trimmed.slice(ISSUER_PREFIX.length), 'base64url')))
}

function issuerSigningBytes (c: Omit<IssuerCertificate, 'signature'>): Uint8Array {
  return encodeCanonical([ISSUER_DOMAIN, c.org, c.root, c.issuer, c.issuedAtMs, c.expiresAtMs])
}

/** The embedded issuer certificate of a version 2 certificate or token: root-signed, for the same org and root. */
function delegationOf (value: unknown, org: string, root: Uint8Array, code: 'cert-malformed' | 'token-malformed'): IssuerCertificate {
  if (!(value instanceof Uint8Array)) throw new OrgError(code, 'the issuer certificate must be bytes')
  const issuer = decodeIssuerCertificate(value)
  if (issuer.org !== org || toHex(issuer.root) !== toHex(root)) throw new OrgError('cert-mismatch', 'the issuer certificate is for another organisation')
  return issuer
}

function delegatedSigningBytes (domain: string, fields: unknown[], issuer: Uint8Array): Uint8Array {
  return encodeCanonical([domain, ...fields, issuer])
}

function delegatedVerified (domain: string, fields: unknown[], signed: { signature: Uint8Array, issuer?: IssuerCertificate }): boolean {
  return signed.issuer !== undefined && verify(signed.issuer.issuer, delegatedSigningBytes(domain, fields, signed.issuer.issuer), signed.signature)
}

/** A join token from the root (`issuer` a Signer) or from a delegated member, which then serves the join. */
export function createJoinToken (issuer: Signer | Issuer, fields: { org: string, addrs: string[], nonce: Uint8Array, expiresAtMs: number }): string {
  assertOrgName(fields.org)
  const { signer, delegation } = 'signer' in issuer ? issuer : { signer: issuer, delegation: undefined }
  const unsigned = { org: fields.org, root: delegation?.root ?? signer.publicKey, addrs: fields.addrs.slice(0, ADDRS_MAX), nonce: fields.nonce, expiresAtMs: fields.expiresAtMs }
  const head = [unsigned.org, unsigned.root, unsigned.addrs, unsigned.nonce, unsigned.expiresAtMs]
  const bytes = delegation === undefined
    ? encodeCanonical([1, ...head, signer.sign(joinSigningBytes(unsigned))])
    : encodeCanonical([2, ...head, signer.sign(delegatedSigningBytes(DELEGATED_JOIN_DOMAIN, head, delegation.issuer)), encodeIssuerCertificate(delegation)])
  return TOKEN_PREFIX + Buffer.from(bytes).toString('base64url')
}

/** Parses a join token and checks it is signed by the root it names and not expired. */
export function parseJoinToken (text: string, nowMs: number): JoinToken {
  const trimmed = text.trim()
  if (!trimmed.startsWith(TOKEN_PREFIX) || trimmed.length > TOKEN_CHARS_MAX) throw new OrgError('token-malformed', `a join token starts with '${TOKEN_PREFIX}' (from fedmesh invite)`)
  const value = decodeCanonical(new Uint8Array(Buffer.from(trimmed.slice(TOKEN_PREFIX.length), 'base64url')), () => new OrgError('token-malformed', 'join token is not valid CBOR'))
  if (!Array.isArray(value) || !((value[0] === 1 && value.length === 7) || (value[0] === 2 && value.length === 8))) {
    throw new OrgError('token-malformed', 'join token must hold 7 fields (version 1) or 8 (version 2)')
  }
  const [, org, root, addrs, nonce, expiresAtMs, signature, issuer] = value as unknown[]
  if (typeof org !== 'string' || !ORG_NAME_PATTERN.test(org) || !isKey(root) || !Array.isArray(addrs) || addrs.length > ADDRS_MAX ||
    !addrs.every((a) => typeof a === 'string' && a.length <= 256) || !(nonce instanceof Uint8Array) || nonce.length !== 16 ||
    !isTime(expiresAtMs) || !(signature instanceof Uint8Array) || signature.length !== 64) {
    throw new OrgError('token-malformed', 'join token fields have the wrong types or sizes')
  }
  const token: JoinToken = { org, root, addrs: addrs as string[], nonce, expiresAtMs, signature }
  if (value[0] === 2) token.issuer = delegationOf(issuer, org, root, 'token-malformed')
  const head = [org, root, addrs, nonce, expiresAtMs]
  if (token.issuer === undefined ? !verify(root, joinSigningBytes(token), signature) : !delegatedVerified(DELEGATED_JOIN_DOMAIN, head, token)) {
    throw new OrgError('token-bad-signature', 'join token is not signed by the organisation root it names, nor by a member it delegated to')
  }
  if (nowMs > expiresAtMs || (token.issuer !== undefined && nowMs > token.issuer.expiresAtMs)) throw new OrgError('token-expired', `join token expired at ${new Date(expiresAtMs).toISOString()}`)
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

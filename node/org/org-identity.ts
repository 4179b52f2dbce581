import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { AuditInput } from '../gate/audit.js'
import type { Clock, Rng } from '../../base/clock.js'
import { openEnvelope, ReplayGuard, sealEnvelope } from '../../base/envelope.js'
import { FedmeshError } from '../../base/errors.js'
import { fromHex, toHex } from '../../base/bytes.js'
import { loadOrCreateIdentity, publicKeyOfPeerId } from '../runtime/key-file.js'
import { type NodeIdentity, type Signer } from '../../base/ed25519.js'
import {
  CERT_TTL_MS_DEFAULT, JOIN_TTL_MS_DEFAULT, OrgError, assertOrgName, createJoinToken, decodeIssuerCertificate, encodeCertificate, encodeIssuerCertificate,
  issueCertificate, issueIssuerCertificate, issuerCertificateText, parseIssuerCertificateText, parseJoinToken, verifyCertificate,
  type IssuerCertificate, type Issuer, type NodeCertificate
} from '../../base/org-certificate.js'
import type { Storage } from '../../base/storage.js'
import type { Transport } from '../../base/transport.js'

// Where a node's organisation comes from, and the join protocol. A node is in exactly one org,
// proven by <data-dir>/node.cert. The first node of an org holds <data-dir>/org-root.key, issues
// itself a certificate, and serves joins: a newcomer presents a one-time join token (from
// `fedmesh invite`) on rpc channel 'org/join/v1' and receives a certificate for its own key.
// The founder may delegate this to chosen members (`fedmesh org delegate KEY`, then `fedmesh org
// accept-issuer` on the member: <data-dir>/issuer.cert), so adding a machine does not depend on
// one node: a delegate's tokens and certificates carry the root's grant, checked by everyone.
export const ORG_ROOT_KEY_FILE = 'org-root.key'
export const CERT_FILE = 'node.cert'
export const ISSUER_CERT_FILE = 'issuer.cert'
export const JOIN_CHANNEL = 'org/join/v1'
const JOIN_TYPE = 'org.join'
const USED_TOKEN_PREFIX = 'org/used-token/'

export interface OrgIdentity {
  org: string
  root: Uint8Array
  certificate: NodeCertificate
  certificateBytes: Uint8Array
  /** Present on nodes holding the org root key: they issue certificates. */
  rootSigner?: NodeIdentity
  /** Present on members the root delegated issuing to (issuer.cert). */
  delegation?: IssuerCertificate
}

export interface ResolveOrgInit {
  dataDir: string
  identity: NodeIdentity
  nowMs: number
  /** The org to found when this node has no certificate yet (default 'default'). */
  org?: string
  /** A join token: get a certificate from the org that issued it. */
  join?: string
  /** Performs the join exchange (needs the transport). */
  requestJoin: (token: string) => Promise<Uint8Array>
}

/** Whether this data dir's node belongs to an org already (a later start, not the first). */
export function hasOrgCertificate (dataDir: string): boolean {
  return existsSync(join(dataDir, CERT_FILE))
}

/** Loads this node's org identity, founding an org or joining one on first start. */
export async function resolveOrgIdentity (init: ResolveOrgInit): Promise<OrgIdentity> {
  const certPath = join(init.dataDir, CERT_FILE)
  const rootSigner = existsSync(join(init.dataDir, ORG_ROOT_KEY_FILE)) ? (await loadOrCreateIdentity(init.dataDir, ORG_ROOT_KEY_FILE)).identity : undefined
  if (existsSync(certPath)) {
    const certificateBytes = new Uint8Array(await readFile(certPath))
    const certificate = verifyCertificate(certificateBytes, { nowMs: init.nowMs, node: init.identity.publicKey })
    if (init.join !== undefined || (init.org !== undefined && init.org !== certificate.org)) {
      throw new FedmeshError('already-in-org', `this node already belongs to org '${certificate.org}' (${certPath}); to join another, use a new data dir`)
    }
    const delegation = await loadDelegation(init.dataDir, init.identity, certificate, init.nowMs)
    return { org: certificate.org, root: certificate.root, certificate, certificateBytes, ...(rootSigner !== undefined ? { rootSigner } : {}), ...(delegation !== undefined ? { delegation } : {}) }
  }
  if (init.join !== undefined) {
    if (rootSigner !== undefined) throw new FedmeshError('already-in-org', `${join(init.dataDir, ORG_ROOT_KEY_FILE)} exists (fedmesh init --org): this data dir founds its own org; to join another, use a new data dir`)
    const token = parseJoinToken(init.join, init.nowMs)
    const certificateBytes = await init.requestJoin(init.join)
    const certificate = verifyCertificate(certificateBytes, { nowMs: init.nowMs, node: init.identity.publicKey, org: token.org, root: token.root })
    await writeFile(certPath, certificateBytes, { mode: 0o600 })
    return { org: certificate.org, root: certificate.root, certificate, certificateBytes }
  }
  const org = init.org ?? 'default'
  assertOrgName(org)
  const founder = rootSigner ?? (await loadOrCreateIdentity(init.dataDir, ORG_ROOT_KEY_FILE)).identity
  const certificate = issueCertificate(founder, { org, node: init.identity.publicKey, issuedAtMs: init.nowMs })
  const certificateBytes = encodeCertificate(certificate)
  await writeFile(certPath, certificateBytes, { mode: 0o600 })
  return { org, root: certificate.root, certificate, certificateBytes, rootSigner: founder }
}

/** Signs a one-time join token with this data dir's org root key, or its delegation (the `fedmesh invite` command). */
export async function inviteToken (dataDir: string, addrs: string[], nowMs: number, nonce: Uint8Array, ttlMs = JOIN_TTL_MS_DEFAULT): Promise<string> {
  const issuer = await issuerOf(dataDir, nowMs)
  return createJoinToken(issuer.issuer, { org: issuer.certificate.org, addrs, nonce, expiresAtMs: nowMs + ttlMs })
}

/** The root (org-root.key) or a delegated member (issuer.cert) of this data dir, with its node certificate. */
async function issuerOf (dataDir: string, nowMs: number): Promise<{ issuer: Signer | Issuer, certificate: NodeCertificate }> {
  const certificateBytes = new Uint8Array(await readFile(join(dataDir, CERT_FILE)).catch(() => new Uint8Array()))
  if (existsSync(join(dataDir, ORG_ROOT_KEY_FILE))) {
    const { identity: root } = await loadOrCreateIdentity(dataDir, ORG_ROOT_KEY_FILE)
    return { issuer: root, certificate: verifyCertificate(certificateBytes, { nowMs, root: root.publicKey }) }
  }
  if (existsSync(join(dataDir, ISSUER_CERT_FILE))) {
    const { identity } = await loadOrCreateIdentity(dataDir)
    const certificate = verifyCertificate(certificateBytes, { nowMs, node: identity.publicKey })
    const delegation = (await loadDelegation(dataDir, identity, certificate, nowMs))!
    return { issuer: { signer: identity, delegation }, certificate }
  }
  throw new FedmeshError('not-org-root', `no ${ORG_ROOT_KEY_FILE} or ${ISSUER_CERT_FILE} in ${dataDir}: only the founder, or a member it delegated to (fedmesh org delegate), can invite`)
}

/** The root grants a member the issuer right (`fedmesh org delegate KEY`): the text the member accepts. */
export async function delegateIssuing (dataDir: string, member: Uint8Array, nowMs: number, ttlMs = CERT_TTL_MS_DEFAULT): Promise<string> {
  const { issuer, certificate } = await issuerOf(dataDir, nowMs)
  if ('signer' in issuer) throw new FedmeshError('not-org-root', 'only the founder (org-root.key) delegates issuing')
  return issuerCertificateText(issueIssuerCertificate(issuer, { org: certificate.org, issuer: member, issuedAtMs: nowMs, ttlMs }))
}

/** The member's side (`fedmesh org accept-issuer TEXT`): checks the grant is for this node and org, stores it. */
export async function acceptDelegation (dataDir: string, text: string, nowMs: number): Promise<IssuerCertificate> {
  const delegation = parseIssuerCertificateText(text)
  const { identity } = await loadOrCreateIdentity(dataDir)
  const certificate = verifyCertificate(new Uint8Array(await readFile(join(dataDir, CERT_FILE))), { nowMs, node: identity.publicKey })
  checkDelegation(delegation, identity, certificate, nowMs)
  await writeFile(join(dataDir, ISSUER_CERT_FILE), encodeIssuerCertificate(delegation), { mode: 0o600 })
  return delegation
}

async function loadDelegation (dataDir: string, identity: NodeIdentity, certificate: NodeCertificate, nowMs: number): Promise<IssuerCertificate | undefined> {
  const path = join(dataDir, ISSUER_CERT_FILE)
  if (!existsSync(path)) return undefined
  const delegation = decodeIssuerCertificate(new Uint8Array(await readFile(path)))
  checkDelegation(delegation, identity, certificate, nowMs)
  return delegation
}

function checkDelegation (delegation: IssuerCertificate, identity: NodeIdentity, certificate: NodeCertificate, nowMs: number): void {
  if (toHex(delegation.issuer) !== identity.publicKeyHex) throw new OrgError('cert-mismatch', 'the issuer certificate is for another node key')
  if (delegation.org !== certificate.org || toHex(delegation.root) !== toHex(certificate.root)) throw new OrgError('cert-mismatch', 'the issuer certificate is for another organisation')
  if (nowMs > delegation.expiresAtMs) throw new OrgError('cert-expired', `the issuer certificate expired at ${new Date(delegation.expiresAtMs).toISOString()}`)
}

/** The joining side: presents the token to the org node named in it, returns the certificate. */
export async function requestJoin (transport: Transport, identity: NodeIdentity, token: string, clock: Clock, rng: Rng): Promise<Uint8Array> {
  const parsed = parseJoinToken(token, clock.wallMs())
  const issuer = parsed.addrs.map((a) => publicKeyOfPeerId(a.split('/p2p/')[1] ?? '')).find((k) => k !== undefined)
  if (issuer === undefined) throw new OrgError('token-malformed', 'join token names no /p2p/ address to join through')
  await transport.dial(parsed.addrs)
  const request = sealEnvelope(identity, { type: JOIN_TYPE, org: parsed.org, body: new TextEncoder().encode(token.trim()), timestampMs: clock.wallMs(), nonce: rng.bytes(16) })
  return await transport.request(issuer, JOIN_CHANNEL, request, { timeoutMs: 10_000 })
}

/** The issuing side (the root, or a delegate): checks the token (ours, unexpired, unused), burns it, issues a certificate. */
export function serveJoins (init: {
  transport: Transport, org: OrgIdentity, identity: NodeIdentity, storage: Storage, clock: Clock, audit: (input: AuditInput) => Promise<unknown>,
  /** Refused joins come from strangers: their audit is bounded per window (gate/rejection-audit.ts). */
  auditRejection: (input: AuditInput, reason: string) => Promise<unknown>, certTtlMs?: number
}): void {
  const { org, storage, clock } = init
  const signer: Signer | Issuer | undefined = org.rootSigner ?? (org.delegation !== undefined ? { signer: init.identity, delegation: org.delegation } : undefined)
  if (signer === undefined) return
  // A token is served by whoever signed it: the root its own, a delegate only those it signed.
  const ourToken = (token: { issuer?: IssuerCertificate }): boolean => org.rootSigner !== undefined ? token.issuer === undefined : token.issuer !== undefined && toHex(token.issuer.issuer) === init.identity.publicKeyHex
  const replayGuard = new ReplayGuard()
  let burning: Promise<unknown> = Promise.resolve()
  // Checking and burning a token happen one join at a time, so a token cannot be used twice.
  const burnOnce = async (usedKey: string, peer: string): Promise<void> => {
    const run = burning.then(async () => {
      if (await storage.get(usedKey) !== undefined) throw new OrgError('token-reused', 'join token was already used')
      await storage.batch([{ type: 'put', key: usedKey, value: fromHex(peer) }])
    })
    burning = run.catch(() => undefined)
    await run
  }
  init.transport.onRequest(JOIN_CHANNEL, async (from, bytes) => {
    const peer = toHex(from)
    try {
      const envelope = openEnvelope(bytes, { nowMs: clock.wallMs(), expectedSender: from, replayGuard, bytesMax: 8192 })
      const token = parseJoinToken(new TextDecoder().decode(envelope.body), clock.wallMs())
      if (toHex(token.root) !== toHex(org.root) || token.org !== org.org) throw new OrgError('token-wrong-org', 'join token was issued by another organisation')
      if (!ourToken(token)) throw new OrgError('token-wrong-issuer', 'join token was issued by another member of the organisation: join through it')
      await burnOnce(USED_TOKEN_PREFIX + toHex(token.nonce), peer)
      const certificate = issueCertificate(signer, { org: org.org, node: from, issuedAtMs: clock.wallMs(), ttlMs: init.certTtlMs ?? CERT_TTL_MS_DEFAULT })
      await init.audit({ action: 'org.join', decision: 'allow', peer, org: org.org })
      return encodeCertificate(certificate)
    } catch (err) {
      const reason = err instanceof FedmeshError ? err.code : 'malformed'
      await init.auditRejection({ action: 'org.join', decision: 'deny', peer, detail: { reason } }, reason)
      throw err
    }
  })
}

import assert from 'node:assert/strict'
import { OrgError, createJoinToken, encodeCertificate, issueCertificate, issueIssuerCertificate, issuerCertificateText, parseIssuerCertificateText, parseJoinToken, verifyCertificate, type OrgErrorCode } from '../../base/org-certificate.js'
import { generateIdentity } from '../../node/runtime/key-file.js'

const root = generateIdentity()
const node = generateIdentity()
const NOW_MS = 1_790_000_000_000

function failsWith (fn: () => unknown, code: OrgErrorCode): void {
  assert.throws(fn, (err: unknown) => err instanceof OrgError && err.code === code)
}

describe('organisation certificates and join tokens', () => {
  it('verifies a certificate issued by the org root, for its node, org and root', () => {
    const bytes = encodeCertificate(issueCertificate(root, { org: 'acme', node: node.publicKey, issuedAtMs: NOW_MS, ttlMs: 1000 }))
    const cert = verifyCertificate(bytes, { nowMs: NOW_MS + 500, node: node.publicKey, org: 'acme', root: root.publicKey })
    assert.equal(cert.org, 'acme')
    failsWith(() => verifyCertificate(bytes, { nowMs: NOW_MS + 1001 }), 'cert-expired')
    failsWith(() => verifyCertificate(bytes, { nowMs: NOW_MS, node: root.publicKey }), 'cert-mismatch')
    failsWith(() => verifyCertificate(bytes, { nowMs: NOW_MS, org: 'globex' }), 'cert-mismatch')
    failsWith(() => verifyCertificate(bytes, { nowMs: NOW_MS, root: node.publicKey }), 'cert-mismatch')
  })

  it('rejects any tampering with a certificate', () => {
    const bytes = encodeCertificate(issueCertificate(root, { org: 'acme', node: node.publicKey, issuedAtMs: NOW_MS }))
    for (let i = 0; i < bytes.length; i++) {
      const copy = Uint8Array.from(bytes)
      copy[i] = copy[i]! ^ 0x01
      assert.throws(() => verifyCertificate(copy, { nowMs: NOW_MS, node: node.publicKey, org: 'acme', root: root.publicKey }), `byte ${i}`)
    }
    failsWith(() => verifyCertificate(new Uint8Array([1, 2, 3]), { nowMs: NOW_MS }), 'cert-malformed')
  })

  it('parses a join token signed by the root it names, and refuses expired, forged or garbled ones', () => {
    const fields = { org: 'acme', addrs: ['/ip4/127.0.0.1/tcp/1/p2p/x'], nonce: new Uint8Array(16).fill(1), expiresAtMs: NOW_MS + 1000 }
    const token = createJoinToken(root, fields)
    const parsed = parseJoinToken(token, NOW_MS)
    assert.equal(parsed.org, 'acme')
    assert.deepEqual(parsed.addrs, fields.addrs)
    failsWith(() => parseJoinToken(token, NOW_MS + 1001), 'token-expired')
    failsWith(() => parseJoinToken('hello', NOW_MS), 'token-malformed')
    failsWith(() => parseJoinToken(token.slice(0, -6), NOW_MS), 'token-malformed')
    const bytes = Buffer.from(token.slice('fmjoin1.'.length), 'base64url')
    bytes[bytes.length - 70] = bytes[bytes.length - 70]! ^ 1
    assert.throws(() => parseJoinToken('fmjoin1.' + bytes.toString('base64url'), NOW_MS), OrgError)
  })

  describe('issuing delegated by the root to a member (issuer certificates)', () => {
    const delegate = generateIdentity()
    const newcomer = generateIdentity()
    const delegation = issueIssuerCertificate(root, { org: 'acme', issuer: delegate.publicKey, issuedAtMs: NOW_MS, ttlMs: 10_000 })

    it('chains a delegate\'s certificates and tokens to the root, and refuses them past the delegation', () => {
      const bytes = encodeCertificate(issueCertificate({ signer: delegate, delegation }, { org: 'acme', node: newcomer.publicKey, issuedAtMs: NOW_MS, ttlMs: 60_000 }))
      const cert = verifyCertificate(bytes, { nowMs: NOW_MS + 1, node: newcomer.publicKey, org: 'acme', root: root.publicKey })
      assert.equal(cert.expiresAtMs, NOW_MS + 10_000, 'never outlives the delegation')
      assert.ok(bytes.length <= 512, `${bytes.length} bytes: fits an announcement`)
      failsWith(() => verifyCertificate(bytes, { nowMs: NOW_MS + 10_001 }), 'cert-expired')
      const token = parseJoinToken(createJoinToken({ signer: delegate, delegation }, { org: 'acme', addrs: [], nonce: new Uint8Array(16), expiresAtMs: NOW_MS + 5000 }), NOW_MS)
      assert.deepEqual([token.root, token.issuer?.issuer], [root.publicKey, delegate.publicKey])
      assert.deepEqual(parseIssuerCertificateText(issuerCertificateText(delegation)), delegation)
    })

    it('refuses what a member without the root\'s grant signs, or a grant from another root', () => {
      const impostor = generateIdentity()
      const forged = { ...delegation, issuer: impostor.publicKey }   // the root signed the grant for delegate, not for impostor
      failsWith(() => verifyCertificate(encodeCertificate(issueCertificate({ signer: impostor, delegation: forged }, { org: 'acme', node: newcomer.publicKey, issuedAtMs: NOW_MS })), { nowMs: NOW_MS }), 'cert-bad-signature')
      const stolen = encodeCertificate(issueCertificate({ signer: impostor, delegation }, { org: 'acme', node: newcomer.publicKey, issuedAtMs: NOW_MS }))
      failsWith(() => verifyCertificate(stolen, { nowMs: NOW_MS }), 'cert-bad-signature')
      const otherRoot = issueIssuerCertificate(generateIdentity(), { org: 'acme', issuer: delegate.publicKey, issuedAtMs: NOW_MS })
      const elsewhere = encodeCertificate({ ...issueCertificate({ signer: delegate, delegation: otherRoot }, { org: 'acme', node: newcomer.publicKey, issuedAtMs: NOW_MS }) })
      failsWith(() => verifyCertificate(elsewhere, { nowMs: NOW_MS, root: root.publicKey }), 'cert-mismatch')
      failsWith(() => parseJoinToken(createJoinToken({ signer: impostor, delegation }, { org: 'acme', addrs: [], nonce: new Uint8Array(16), expiresAtMs: NOW_MS + 5000 }), NOW_MS), 'token-bad-signature')
    })
  })
})

import assert from 'node:assert/strict'
import { encodeCanonical } from '../../base/codec.js'
import { EnvelopeError, ReplayGuard, openEnvelope, sealEnvelope, type EnvelopeRejection } from '../../base/envelope.js'
import { NodeIdentity } from '../../base/ed25519.js'
import { seededBytes } from '../helpers/bytes.js'
import { generateIdentity } from '../../node/runtime/key-file.js'

const alice = generateIdentity()
const mallory = generateIdentity()
const NOW_MS = 1_790_000_000_000
let nonceCounter = 0

function seal (overrides: { timestampMs?: number, body?: Uint8Array, signer?: NodeIdentity } = {}): Uint8Array {
  const nonce = new Uint8Array(16)
  new DataView(nonce.buffer).setUint32(0, ++nonceCounter)
  return sealEnvelope(overrides.signer ?? alice, {
    type: 'test.hello', org: 'acme', body: overrides.body ?? new TextEncoder().encode('hi'), timestampMs: overrides.timestampMs ?? NOW_MS, nonce
  })
}

function rejects (fn: () => unknown, reason: EnvelopeRejection): void {
  assert.throws(fn, (err: unknown) => err instanceof EnvelopeError && err.reason === reason && err.code === reason)
}

describe('envelope', () => {
  it('round-trips type, sender, org, timestamp and body', () => {
    const envelope = openEnvelope(seal(), { nowMs: NOW_MS, expectedSender: alice.publicKey })
    assert.equal(envelope.type, 'test.hello')
    assert.equal(envelope.org, 'acme')
    assert.deepEqual(Uint8Array.from(envelope.from), alice.publicKey)
    assert.equal(new TextDecoder().decode(envelope.body), 'hi')
  })

  it('rejects every single-byte tampering of a sealed envelope', () => {
    const bytes = seal()
    for (let i = 0; i < bytes.length; i++) {
      const copy = Uint8Array.from(bytes)
      copy[i] = copy[i]! ^ 0x01
      assert.throws(() => openEnvelope(copy, { nowMs: NOW_MS }), EnvelopeError, `byte ${i}`)
    }
  })

  it('rejects a signature by a key other than the transport peer', () => {
    rejects(() => openEnvelope(seal({ signer: mallory }), { nowMs: NOW_MS, expectedSender: alice.publicKey }), 'sender-mismatch')
  })

  it('rejects a replayed nonce, and accepts it again only once it is outside the window', () => {
    const guard = new ReplayGuard(30_000)
    const bytes = seal()
    openEnvelope(bytes, { nowMs: NOW_MS, replayGuard: guard })
    rejects(() => openEnvelope(bytes, { nowMs: NOW_MS + 1000, replayGuard: guard }), 'replay')
    rejects(() => openEnvelope(bytes, { nowMs: NOW_MS + 61_000, replayGuard: guard }), 'stale')
    openEnvelope(seal({ timestampMs: NOW_MS + 61_000 }), { nowMs: NOW_MS + 61_000, replayGuard: guard })
    assert.equal(guard.size, 1, 'expired nonces are forgotten')
  })

  it('refuses new envelopes when the replay cache is full of live entries', () => {
    const guard = new ReplayGuard(30_000, 2)
    openEnvelope(seal(), { nowMs: NOW_MS, replayGuard: guard })
    openEnvelope(seal(), { nowMs: NOW_MS, replayGuard: guard })
    rejects(() => openEnvelope(seal(), { nowMs: NOW_MS, replayGuard: guard }), 'replay')
  })

  it('rejects timestamps outside the skew window', () => {
    rejects(() => openEnvelope(seal({ timestampMs: NOW_MS - 31_000 }), { nowMs: NOW_MS }), 'stale')
    rejects(() => openEnvelope(seal({ timestampMs: NOW_MS + 31_000 }), { nowMs: NOW_MS }), 'stale')
  })

  it('rejects oversize envelopes before decoding them', () => {
    const bytes = seal({ body: new Uint8Array(2000) })
    rejects(() => openEnvelope(bytes, { nowMs: NOW_MS, bytesMax: 1024 }), 'oversize')
    openEnvelope(bytes, { nowMs: NOW_MS, bytesMax: 4096 })
  })

  it('turns garbage and wrongly shaped CBOR into malformed errors', () => {
    const shapes = [
      new Uint8Array(0),
      seededBytes(1, 300),
      encodeCanonical('hello'),
      encodeCanonical([1, 'x']),
      encodeCanonical([2, 't', alice.publicKey, 'o', NOW_MS, new Uint8Array(16), new Uint8Array(0), new Uint8Array(64)]),
      encodeCanonical([1, 't', new Uint8Array(31), 'o', NOW_MS, new Uint8Array(16), new Uint8Array(0), new Uint8Array(64)]),
      encodeCanonical([1, 't', alice.publicKey, 'o', -5, new Uint8Array(16), new Uint8Array(0), new Uint8Array(64)])
    ]
    for (const bytes of shapes) rejects(() => openEnvelope(bytes, { nowMs: NOW_MS }), 'malformed')
    for (let seed = 2; seed < 500; seed++) {
      assert.throws(() => openEnvelope(seededBytes(seed, seed % 200), { nowMs: NOW_MS }), EnvelopeError)
    }
  })
})

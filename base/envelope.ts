import { decodeCanonical, encodeCanonical } from './codec.js'
import { FedmeshError } from './errors.js'
import { bytesEqual } from './bytes.js'
import { verify, type Signer } from './ed25519.js'

// Every application message travels in a signed envelope:
//   CBOR array [version, type, from, org, timestampMs, nonce, body, signature]
// The signature covers the canonical CBOR of ['fedmesh/envelope/v1', type, from, org, timestampMs,
// nonce, body], so a signature can never be replayed under another type or organisation.
export const ENVELOPE_VERSION = 1
const SIGNING_DOMAIN = 'fedmesh/envelope/v1'
export const ENVELOPE_BYTES_MAX_DEFAULT = 1024 * 1024
export const CLOCK_SKEW_MS_MAX_DEFAULT = 30_000
const NONCE_BYTES = 16
const TYPE_LENGTH_MAX = 64
const ORG_LENGTH_MAX = 64

export type EnvelopeRejection = 'oversize' | 'malformed' | 'bad-signature' | 'sender-mismatch' | 'stale' | 'replay'

export class EnvelopeError extends FedmeshError {
  constructor (readonly reason: EnvelopeRejection, message: string) {
    super(reason, message)
    this.name = 'EnvelopeError'
  }
}

export interface Envelope {
  type: string
  from: Uint8Array
  org: string
  timestampMs: number
  nonce: Uint8Array
  body: Uint8Array
}

export function sealEnvelope (signer: Signer, fields: { type: string, org: string, body: Uint8Array, timestampMs: number, nonce: Uint8Array }): Uint8Array {
  if (fields.nonce.length !== NONCE_BYTES) throw new RangeError(`nonce must be ${NONCE_BYTES} bytes`)
  const envelope: Envelope = { ...fields, from: signer.publicKey }
  const signature = signer.sign(signingBytes(envelope))
  return encodeCanonical([ENVELOPE_VERSION, envelope.type, envelope.from, envelope.org, envelope.timestampMs, envelope.nonce, envelope.body, signature])
}

export interface OpenOptions {
  nowMs: number
  /** The authenticated transport peer's public key; the envelope must be signed by it. */
  expectedSender?: Uint8Array
  replayGuard?: ReplayGuard
  bytesMax?: number
  clockSkewMsMax?: number
}

/** Decodes, bounds, verifies and de-duplicates an untrusted envelope; throws EnvelopeError. */
export function openEnvelope (bytes: Uint8Array, options: OpenOptions): Envelope {
  const bytesMax = options.bytesMax ?? ENVELOPE_BYTES_MAX_DEFAULT
  if (bytes.length > bytesMax) throw new EnvelopeError('oversize', `envelope of ${bytes.length} bytes exceeds ${bytesMax}`)
  const { envelope, signature } = parse(bytes)
  if (options.expectedSender !== undefined && !bytesEqual(options.expectedSender, envelope.from)) {
    throw new EnvelopeError('sender-mismatch', 'envelope signer is not the transport peer')
  }
  if (!verify(envelope.from, signingBytes(envelope), signature)) {
    throw new EnvelopeError('bad-signature', 'envelope signature does not verify')
  }
  const skewMs = options.clockSkewMsMax ?? CLOCK_SKEW_MS_MAX_DEFAULT
  if (Math.abs(envelope.timestampMs - options.nowMs) > skewMs) {
    throw new EnvelopeError('stale', `envelope timestamp is ${envelope.timestampMs - options.nowMs} ms from now (window ±${skewMs} ms)`)
  }
  options.replayGuard?.check(envelope, options.nowMs)
  return envelope
}

function parse (bytes: Uint8Array): { envelope: Envelope, signature: Uint8Array } {
  const value = decodeCanonical(bytes, (reason) => new EnvelopeError('malformed', reason))
  if (!Array.isArray(value) || value.length !== 8) throw new EnvelopeError('malformed', 'envelope must be an array of 8 fields')
  const [version, type, from, org, timestampMs, nonce, body, signature] = value as unknown[]
  if (version !== ENVELOPE_VERSION) throw new EnvelopeError('malformed', `unsupported envelope version ${String(version)}`)
  if (typeof type !== 'string' || type.length === 0 || type.length > TYPE_LENGTH_MAX) throw new EnvelopeError('malformed', 'bad envelope type')
  if (!(from instanceof Uint8Array) || from.length !== 32) throw new EnvelopeError('malformed', 'sender key must be 32 bytes')
  if (typeof org !== 'string' || org.length > ORG_LENGTH_MAX) throw new EnvelopeError('malformed', 'bad organisation')
  if (typeof timestampMs !== 'number' || !Number.isSafeInteger(timestampMs) || timestampMs < 0) throw new EnvelopeError('malformed', 'bad timestamp')
  if (!(nonce instanceof Uint8Array) || nonce.length !== NONCE_BYTES) throw new EnvelopeError('malformed', `nonce must be ${NONCE_BYTES} bytes`)
  if (!(body instanceof Uint8Array)) throw new EnvelopeError('malformed', 'body must be bytes')
  if (!(signature instanceof Uint8Array) || signature.length !== 64) throw new EnvelopeError('malformed', 'signature must be 64 bytes')
  return { envelope: { type, from, org, timestampMs, nonce, body }, signature }
}

function signingBytes (e: Envelope): Uint8Array {
  return encodeCanonical([SIGNING_DOMAIN, e.type, e.from, e.org, e.timestampMs, e.nonce, e.body])
}

/**
 * Remembers (sender, nonce) pairs long enough that a replay is either caught here or falls outside
 * the timestamp window: an entry lives 2 × the skew window from when it was first seen. Bounded: when
 * full of live entries it refuses new envelopes rather than forgetting (forgetting would admit replays).
 */
export class ReplayGuard {
  readonly #seen = new Map<string, number>()

  constructor (readonly windowMs = CLOCK_SKEW_MS_MAX_DEFAULT, readonly entriesMax = 200_000) {}

  check (envelope: Envelope, nowMs: number): void {
    this.#expire(nowMs)
    const key = Buffer.from(envelope.from).toString('base64') + Buffer.from(envelope.nonce).toString('base64')
    if (this.#seen.has(key)) throw new EnvelopeError('replay', 'envelope nonce was already seen from this sender')
    if (this.#seen.size >= this.entriesMax) throw new EnvelopeError('replay', 'replay cache full; refusing until entries expire')
    this.#seen.set(key, nowMs + 2 * this.windowMs)
  }

  get size (): number {
    return this.#seen.size
  }

  // Insertion order is arrival order, so expiry times are non-decreasing from the front (for a
  // non-decreasing clock); stop at the first live entry.
  #expire (nowMs: number): void {
    for (const [key, expiresMs] of this.#seen) {
      if (expiresMs > nowMs) break
      this.#seen.delete(key)
    }
  }
}

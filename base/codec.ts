import { decode, encode } from 'cborg'
import { FedmeshError } from './errors.js'

// Canonical CBOR (RFC 8949 deterministic encoding via cborg) for everything that is signed or sent.
// Decoding is strict: minimal integer/length forms, no indefinite lengths, no undefined/NaN/Infinity,
// no duplicate map keys, so one value has exactly one accepted byte string.
const STRICT = {
  strict: true,
  allowIndefinite: false,
  allowUndefined: false,
  allowNaN: false,
  allowInfinity: false,
  allowBigInt: false,
  rejectDuplicateMapKeys: true
} as const

export function encodeCanonical (value: unknown): Uint8Array {
  return encode(value)
}

/**
 * Decodes strict canonical CBOR. Malformed input becomes a typed error: the caller's own (built
 * from the reason), or a FedmeshError 'malformed'.
 */
export function decodeCanonical (bytes: Uint8Array, malformed: (reason: string) => Error = (reason) => new FedmeshError('malformed', reason)): unknown {
  try {
    return decode(bytes, STRICT)
  } catch (err) {
    throw malformed(`malformed CBOR: ${(err as Error).message}`)
  }
}

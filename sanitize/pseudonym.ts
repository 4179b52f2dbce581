import { hmac } from '@noble/hashes/hmac.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import type { Category } from './categories.js'

// Keyed pseudonyms: the same value under the same per-node salt always maps to the same token, so a
// receiver can correlate ("the same customer again") without learning the value; without the salt a
// guess cannot be confirmed. 10 hex digits (40 bits) keep collisions rare at payload scale.

const PSEUDONYM_HEX_LENGTH = 10
export const SALT_BYTES_MIN = 16

const encoder = new TextEncoder()

export type Pseudonymizer = (category: Category, value: string) => string

export function createPseudonymizer (salt: Uint8Array): Pseudonymizer {
  const keyed = hmac.create(sha256, salt)
  return (category, value) => {
    const message = encoder.encode(`${category}\u0000${canonicalValue(category, value)}`)
    const digest = keyed.clone().update(message).digest()
    return `[${category}:${bytesToHex(digest).slice(0, PSEUDONYM_HEX_LENGTH)}]`
  }
}

/** Spellings of one value share a pseudonym: "Alice@X.com" = "alice@x.com", "4111 1111…" = "4111-1111…". */
function canonicalValue (category: Category, value: string): string {
  switch (category) {
    case 'email':
    case 'ip-address':
      return value.toLowerCase()
    case 'card':
    case 'phone':
    case 'national-id':
      return value.replace(/\D/g, '')
    case 'iban':
      return value.replace(/\s/g, '').toUpperCase()
    default:
      return value
  }
}

import { createHash, createPrivateKey, createPublicKey, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto'
import * as ed from '@noble/ed25519'
import { sha512 } from '@noble/hashes/sha2.js'
import { toHex } from './bytes.js'
import { IdentityError } from './errors.js'

// A node *is* its ed25519 key. @noble/ed25519 derives the key (portable, audited); node:crypto signs
// and verifies on hot paths (~10x faster here). Ed25519 is deterministic (RFC 8032), so both produce
// byte-identical signatures; test/base/ed25519.spec.ts checks that they agree. Key files, fresh keys
// and libp2p's view of a key live in node/runtime/key-file.ts.
ed.hashes.sha512 = sha512

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')

export interface Signer {
  readonly publicKey: Uint8Array
  sign(message: Uint8Array): Uint8Array
}

/** Signs on libuv's thread pool, off the event loop (where signing dominates, e.g. audit batches). */
export interface AsyncSigner {
  readonly publicKey: Uint8Array
  signAsync(message: Uint8Array): Promise<Uint8Array>
}

export class NodeIdentity implements Signer, AsyncSigner {
  readonly publicKey: Uint8Array
  readonly publicKeyHex: string
  readonly #privateKey: KeyObject
  readonly #seed: Uint8Array

  constructor (seed: Uint8Array) {
    if (seed.length !== 32) throw new IdentityError('key-file-malformed', `ed25519 seed must be 32 bytes, got ${seed.length}`)
    this.#seed = Uint8Array.from(seed)
    this.publicKey = ed.getPublicKey(this.#seed)
    this.publicKeyHex = toHex(this.publicKey)
    this.#privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, this.#seed]), format: 'der', type: 'pkcs8' })
  }

  sign (message: Uint8Array): Uint8Array {
    return new Uint8Array(cryptoSign(null, message, this.#privateKey))
  }

  async signAsync (message: Uint8Array): Promise<Uint8Array> {
    return await new Promise((resolve, reject) => {
      cryptoSign(null, message, this.#privateKey, (err, signature) => {
        if (err !== null) reject(err)
        else resolve(new Uint8Array(signature.buffer, signature.byteOffset, signature.byteLength))
      })
    })
  }

  /** The portable (pure JS) signing path; identical output to sign(). */
  signPortable (message: Uint8Array): Uint8Array {
    return ed.sign(message, this.#seed)
  }

  /** The seed as stored in the key file (hex). */
  exportSeedHex (): string {
    return toHex(this.#seed)
  }
}

const publicKeyCache = new Map<string, KeyObject>()
const PUBLIC_KEY_CACHE_MAX = 4096

function publicKeyObject (publicKey: Uint8Array): KeyObject {
  const id = toHex(publicKey)
  let key = publicKeyCache.get(id)
  if (key === undefined) {
    key = createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, publicKey]), format: 'der', type: 'spki' })
    if (publicKeyCache.size >= PUBLIC_KEY_CACHE_MAX) publicKeyCache.clear()
    publicKeyCache.set(id, key)
  }
  return key
}

/** Verifies an ed25519 signature; false (never a throw) for malformed keys or signatures. */
export function verify (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false
  const id = createHash('sha256').update(publicKey).update(signature).update(message).digest('base64')
  if (verified.has(id)) return true
  let ok: boolean
  try {
    ok = cryptoVerify(null, message, publicKeyObject(publicKey), signature)
  } catch {
    return false
  }
  if (ok) remember(id)
  return ok
}

// Signatures already verified, by SHA-256 of (key, signature, message): the same signature arrives
// again and again (a vote inside every commit certificate and view change that carries it, a
// retransmission, an envelope gossiped twice), and hashing costs a small fraction of verifying.
// Only successes are kept, so a forgery costs a full verification every time it is tried.
const VERIFIED_MAX = 16_384
const verified = new Set<string>()

function remember (id: string): void {
  if (verified.size >= VERIFIED_MAX) verified.delete(verified.values().next().value!)
  verified.add(id)
}

/** The portable (pure JS) verification path. */
export function verifyPortable (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    return ed.verify(signature, message, publicKey)
  } catch {
    return false
  }
}

import { createPrivateKey, createPublicKey, sign as cryptoSign, verify as cryptoVerify, randomBytes, type KeyObject } from 'node:crypto'
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import * as ed from '@noble/ed25519'
import { sha512 } from '@noble/hashes/sha2.js'
import { generateKeyPairFromSeed, publicKeyFromRaw } from '@libp2p/crypto/keys'
import { peerIdFromPublicKey, peerIdFromString } from '@libp2p/peer-id'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import { IdentityError } from './errors.js'

// A node *is* its ed25519 key. @noble/ed25519 derives the key (portable, audited); node:crypto signs
// and verifies on hot paths (~10x faster here). Ed25519 is deterministic (RFC 8032), so both produce
// byte-identical signatures; test/node/identity.spec.ts checks that they agree.
ed.hashes.sha512 = sha512

export const KEY_FILE = 'node.key'
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

  static generate (): NodeIdentity {
    return new NodeIdentity(new Uint8Array(randomBytes(32)))
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

  /** The libp2p private key built from the same seed: the peer id's public key is ours. */
  async libp2pPrivateKey (): Promise<PrivateKey> {
    return generateKeyPairFromSeed('Ed25519', this.#seed)
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
  try {
    return cryptoVerify(null, message, publicKeyObject(publicKey), signature)
  } catch {
    return false
  }
}

/** The portable (pure JS) verification path. */
export function verifyPortable (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    return ed.verify(signature, message, publicKey)
  } catch {
    return false
  }
}

/** The libp2p peer id of an ed25519 public key. */
export function peerIdOf (publicKey: Uint8Array): PeerId {
  return peerIdFromPublicKey(publicKeyFromRaw(publicKey))
}

/** The ed25519 public key inside a libp2p peer id string, or undefined if it is not an ed25519 id. */
export function publicKeyOfPeerId (peerId: string): Uint8Array | undefined {
  try {
    const id = peerIdFromString(peerId)
    return id.type === 'Ed25519' ? id.publicKey.raw : undefined
  } catch {
    return undefined
  }
}

/**
 * Loads the node key (or another key file, such as the org root) from dataDir, creating it (mode
 * 0600) on first start. Refuses a key file that is group/world accessible or malformed, with a
 * message that says how to fix it.
 */
export async function loadOrCreateIdentity (dataDir: string, fileName = KEY_FILE): Promise<{ identity: NodeIdentity, created: boolean }> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  const path = join(dataDir, fileName)
  let text: string
  try {
    const info = await stat(path)
    if ((info.mode & 0o077) !== 0) {
      throw new IdentityError('key-file-permissions',
        `key file ${path} has mode ${(info.mode & 0o777).toString(8)}; it must not be readable by group or others (run: chmod 600 ${path})`)
    }
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    const identity = NodeIdentity.generate()
    await writeFile(path, identity.exportSeedHex() + '\n', { mode: 0o600, flag: 'wx' })
    return { identity, created: true }
  }
  const hex = text.trim()
  if (!/^[0-9a-f]{64}$/i.test(hex)) {
    throw new IdentityError('key-file-malformed', `key file ${path} is malformed: expected 64 hex characters (a 32-byte ed25519 seed)`)
  }
  return { identity: new NodeIdentity(fromHex(hex)), created: false }
}

export function toHex (bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}

export function bytesEqual (a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0
}

export function fromHex (hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex, 'hex'))
}

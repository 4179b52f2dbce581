import { randomBytes } from 'node:crypto'
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPairFromSeed, publicKeyFromRaw } from '@libp2p/crypto/keys'
import { peerIdFromPublicKey, peerIdFromString } from '@libp2p/peer-id'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import { fromHex } from '../../base/bytes.js'
import { NodeIdentity } from '../../base/ed25519.js'
import { IdentityError } from '../../base/errors.js'

// The node key on disk, fresh keys from the system's randomness, and libp2p's view of a key (the
// peer id is derived from the same ed25519 seed, so it names the same node).

export const KEY_FILE = 'node.key'

export function generateIdentity (): NodeIdentity {
  return new NodeIdentity(new Uint8Array(randomBytes(32)))
}

/** The libp2p private key built from the same seed: the peer id's public key is ours. */
export async function libp2pPrivateKey (identity: NodeIdentity): Promise<PrivateKey> {
  return generateKeyPairFromSeed('Ed25519', fromHex(identity.exportSeedHex()))
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
    const identity = generateIdentity()
    await writeFile(path, identity.exportSeedHex() + '\n', { mode: 0o600, flag: 'wx' })
    return { identity, created: true }
  }
  const hex = text.trim()
  if (!/^[0-9a-f]{64}$/i.test(hex)) {
    throw new IdentityError('key-file-malformed', `key file ${path} is malformed: expected 64 hex characters (a 32-byte ed25519 seed)`)
  }
  return { identity: new NodeIdentity(fromHex(hex)), created: false }
}

import { createPrivateKey, sign, type KeyObject } from 'node:crypto'
import type { NodeIdentity } from './identity.js'

// Signs on libuv's thread pool instead of the event loop: node:crypto's sign() takes a callback
// for that. Ed25519 is deterministic, so the signatures equal NodeIdentity.sign()'s. Used where
// signing dominates (the audit log's group commit): the event loop keeps chaining and writing.

export interface AsyncSigner {
  readonly publicKey: Uint8Array
  signAsync(message: Uint8Array): Promise<Uint8Array>
}

export function threadpoolSigner (identity: NodeIdentity): AsyncSigner {
  const base64url = (hex: string): string => Buffer.from(hex, 'hex').toString('base64url')
  const privateKey: KeyObject = createPrivateKey({
    key: { kty: 'OKP', crv: 'Ed25519', d: base64url(identity.exportSeedHex()), x: base64url(identity.publicKeyHex) },
    format: 'jwk'
  })
  return {
    publicKey: identity.publicKey,
    signAsync: async (message) => await new Promise((resolve, reject) => {
      sign(null, message, privateKey, (err, signature) => {
        if (err !== null) reject(err)
        else resolve(new Uint8Array(signature.buffer, signature.byteOffset, signature.byteLength))
      })
    })
  }
}

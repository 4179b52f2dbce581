import assert from 'node:assert/strict'
import { chmod, mkdtemp, readFile, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { IdentityError } from '../../base/errors.js'
import { KEY_FILE, loadOrCreateIdentity, peerIdOf, publicKeyOfPeerId, generateIdentity, libp2pPrivateKey } from '../../node/runtime/key-file.js'
import { NodeIdentity, verify, verifyPortable } from '../../base/ed25519.js'
import { fromHex, toHex } from '../../base/bytes.js'

// RFC 8032 section 7.1, tests 1-3: (secret key, public key, message, signature).
const RFC8032 = [
  ['9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60', 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a', '',
    'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b'],
  ['4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb', '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c', '72',
    '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00'],
  ['c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7', 'fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025', 'af82',
    '6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a']
] as const

describe('identity', () => {
  it('matches the RFC 8032 test vectors on both the node:crypto and the noble path', () => {
    for (const [seed, pub, msg, sig] of RFC8032) {
      const identity = new NodeIdentity(fromHex(seed))
      assert.equal(identity.publicKeyHex, pub)
      assert.equal(toHex(identity.sign(fromHex(msg))), sig)
      assert.equal(toHex(identity.signPortable(fromHex(msg))), sig)
      assert.ok(verify(fromHex(pub), fromHex(msg), fromHex(sig)))
      assert.ok(verifyPortable(fromHex(pub), fromHex(msg), fromHex(sig)))
    }
  })

  it('produces byte-identical signatures on both paths and rejects tampering', () => {
    const identity = generateIdentity()
    const message = new TextEncoder().encode('fedmesh')
    const signature = identity.sign(message)
    assert.deepEqual(signature, identity.signPortable(message))
    const tampered = Uint8Array.from(signature)
    tampered[0] = tampered[0]! ^ 1
    assert.equal(verify(identity.publicKey, message, tampered), false)
    assert.equal(verifyPortable(identity.publicKey, message, tampered), false)
    assert.equal(verify(generateIdentity().publicKey, message, signature), false)
    assert.equal(verify(new Uint8Array(5), message, signature), false, 'malformed key is a false, not a throw')
  })

  it('derives the libp2p peer id from the same key', async () => {
    const identity = generateIdentity()
    const privateKey = await libp2pPrivateKey(identity)
    assert.deepEqual(privateKey.publicKey.raw, identity.publicKey)
    const peerId = peerIdOf(identity.publicKey).toString()
    assert.deepEqual(publicKeyOfPeerId(peerId), identity.publicKey)
    assert.equal(publicKeyOfPeerId('not-a-peer-id'), undefined)
  })

  describe('key file', () => {
    let dir: string
    beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'fedmesh-id-')) })

    it('is created once with mode 0600 and reloaded unchanged', async () => {
      const first = await loadOrCreateIdentity(dir)
      assert.equal(first.created, true)
      assert.equal((await stat(join(dir, KEY_FILE))).mode & 0o777, 0o600)
      const second = await loadOrCreateIdentity(dir)
      assert.equal(second.created, false)
      assert.equal(second.identity.publicKeyHex, first.identity.publicKeyHex)
    })

    it('refuses a group- or world-readable key file', async () => {
      await loadOrCreateIdentity(dir)
      await chmod(join(dir, KEY_FILE), 0o644)
      await assert.rejects(loadOrCreateIdentity(dir), (err: Error) => err instanceof IdentityError && err.code === 'key-file-permissions' && /chmod 600/.test(err.message))
    })

    it('refuses a malformed key file without overwriting it', async () => {
      await writeFile(join(dir, KEY_FILE), 'not a key\n', { mode: 0o600 })
      await assert.rejects(loadOrCreateIdentity(dir), (err: Error) => err instanceof IdentityError && err.code === 'key-file-malformed')
      assert.equal(await readFile(join(dir, KEY_FILE), 'utf8'), 'not a key\n')
    })
  })
})

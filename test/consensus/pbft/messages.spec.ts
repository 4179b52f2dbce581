import assert from 'node:assert/strict'
import { encode } from 'cborg'
import {
  type PbftBody, PBFT_MESSAGE_BYTES_MAX, PbftDecodeError, batchDigest, decodePbftMessage, encodePbftMessage, sign, signingBytes
} from '../../../consensus/pbft/index.js'
import { verify } from '../../../base/ed25519.js'
import { Prng } from '../../../simulations/world/prng.js'
import { identityFor, requestOf } from './harness.js'

const org1 = identityFor('org1')
const org2 = identityFor('org2')
const batch = [requestOf('alice', 1, 'a1'), requestOf('bob', 7, 'b7')]
const digest = batchDigest(batch)
const pp = sign(org1, 'org1', { type: 'PrePrepare', view: 0, seq: 1, digest, batch })
const prepare = sign(org2, 'org2', { type: 'Prepare', view: 0, seq: 1, digest })
const checkpoint = sign(org2, 'org2', { type: 'Checkpoint', seq: 4, stateDigest: digest })
const commit = sign(org2, 'org2', { type: 'Commit', view: 0, seq: 1, digest })
const viewChange = sign(org2, 'org2', { type: 'ViewChange', view: 1, stableSeq: 4, checkpointProof: [checkpoint], prepared: [{ prePrepare: pp, prepares: [prepare] }] })
const bodies: PbftBody[] = [
  { type: 'Request', request: batch[0]! },
  pp.body,
  prepare.body,
  { type: 'Commit', view: 0, seq: 1, digest },
  checkpoint.body,
  viewChange.body,
  { type: 'NewView', view: 1, viewChanges: [viewChange], prePrepares: [pp] },
  { type: 'Reply', view: 0, client: 'alice', timestamp: 1, result: new Uint8Array([1, 2]) },
  { type: 'Status', view: 3, lastExecuted: 17 },
  { type: 'Committed', prePrepare: pp, commits: [commit, commit] }
]

function decodeOnlyTypedErrors (bytes: Uint8Array): void {
  try {
    decodePbftMessage(bytes)
  } catch (err) {
    assert.ok(err instanceof PbftDecodeError, `untyped error ${(err as Error).stack}`)
    assert.match(err.code, /^pbft-message-(malformed|too-large)$/)
  }
}

describe('pbft: wire messages', () => {
  it('round-trips every message type, signatures still valid after decoding', () => {
    for (const body of bodies) {
      const m = sign(org1, 'org1', body)
      const bytes = encodePbftMessage(m)
      const back = decodePbftMessage(bytes)
      assert.deepEqual(back, m)
      assert.deepEqual(encodePbftMessage(back), bytes, 'canonical: one encoding per message')
    }
    const back = decodePbftMessage(encodePbftMessage(viewChange))
    assert.ok(back.body.type === 'ViewChange')
    const inner = back.body.prepared[0]!.prePrepare
    assert.ok(verify(org1.publicKey, signingBytes(inner.from, inner.body), inner.signature), 'a certificate inside a view change is still checkable')
    assert.ok(!verify(org2.publicKey, signingBytes(inner.from, inner.body), inner.signature))
  })

  it('rejects oversize input before decoding it', () => {
    assert.throws(() => decodePbftMessage(new Uint8Array(PBFT_MESSAGE_BYTES_MAX + 1)), (err: unknown) => err instanceof PbftDecodeError && err.code === 'pbft-message-too-large')
  })

  it('rejects wrong shapes with typed errors: bad version, unknown type, wrong field counts, bad digests, nesting', () => {
    const valid = encodePbftMessage(prepare)
    const v = [1, 'org2', [2, 0, 1, digest], prepare.signature]
    const cases: unknown[] = [
      [2, ...v.slice(1)],
      [1, 'org2', [99, 0, 1, digest], prepare.signature],
      [1, 'org2', [2, 0, 1], prepare.signature],
      [1, 'org2', [2, 0, 1, new Uint8Array(31)], prepare.signature],
      [1, 'org2', [2, -1, 1, digest], prepare.signature],
      [1, '', [2, 0, 1, digest], prepare.signature],
      [1, 'org2', [2, 0, 1, digest], new Uint8Array(10)],
      [1, 'org2', [0, [null, 1, new Uint8Array()]], prepare.signature],
      // A NewView nested inside a NewView.
      [1, 'org2', [6, 1, [[ 'org1', [6, 1, [], []], prepare.signature ]], []], prepare.signature],
      // A Status with a negative seq, a Committed whose certificate holds a Prepare, and one holding a Committed.
      [1, 'org2', [8, 0, -1], prepare.signature],
      [1, 'org2', [9, ['org1', [1, 0, 1, digest, []], pp.signature], [['org2', [2, 0, 1, digest], prepare.signature]]], prepare.signature],
      [1, 'org2', [9, ['org1', [9, ['org1', [1, 0, 1, digest, []], pp.signature], []], pp.signature], []], prepare.signature]
    ]
    assert.doesNotThrow(() => decodePbftMessage(valid))
    for (const c of cases) {
      assert.throws(() => decodePbftMessage(encode(c)), PbftDecodeError, JSON.stringify(c, (_k, x) => (x instanceof Uint8Array ? `bytes${x.length}` : x)))
    }
  })

  it('fuzz: random bytes and mutated valid messages raise only typed errors', () => {
    const prng = new Prng(1234)
    const valid = bodies.map((b) => encodePbftMessage(sign(org1, 'org1', b)))
    for (let i = 0; i < 3000; i++) decodeOnlyTypedErrors(prng.bytes(prng.intInclusive(0, 64)))
    for (let i = 0; i < 5000; i++) {
      const bytes = Uint8Array.from(prng.pick(valid))
      for (let flips = prng.intInclusive(1, 4); flips > 0; flips--) bytes[prng.intInclusive(0, bytes.length - 1)] = prng.nextU32() & 0xff
      decodeOnlyTypedErrors(prng.chance(1, 4) ? bytes.subarray(0, prng.intInclusive(0, bytes.length)) : bytes)
    }
  })
})

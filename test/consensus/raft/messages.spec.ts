import assert from 'node:assert/strict'
import { RaftDecodeError, RAFT_MESSAGE_BYTES_MAX, decodeRaftMessage, encodeRaftMessage, message } from '../../../consensus/raft/index.js'
import { Prng } from '../../../simulations/world/prng.js'

describe('raft: wire messages', () => {
  const full = message('MsgApp', 'aa', 'bb', 7, {
    logTerm: 6,
    index: 41,
    commit: 40,
    entries: [
      { term: 7, index: 42, type: 'normal', data: new Uint8Array([1, 2]), requestId: { client: 'c1', seq: 9 } },
      { term: 7, index: 43, type: 'conf', data: new Uint8Array([3]) }
    ],
    rejectHint: 3,
    snapshot: { meta: { index: 5, term: 2, conf: { voters: ['aa', 'bb'], learners: ['cc'] } }, data: new Uint8Array([9]) },
    context: 'r1'
  })

  it('round-trips every field', () => {
    assert.deepEqual(decodeRaftMessage(encodeRaftMessage(full)), full)
    const plain = message('MsgVoteResp', 'x', 'y', 1, { reject: true })
    assert.deepEqual(decodeRaftMessage(encodeRaftMessage(plain)), plain)
  })

  it('encodes deterministically', () => {
    assert.deepEqual(encodeRaftMessage(full), encodeRaftMessage(structuredClone(full)))
  })

  it('rejects oversized input before decoding', () => {
    assert.throws(() => decodeRaftMessage(new Uint8Array(RAFT_MESSAGE_BYTES_MAX + 1)),
      (err: unknown) => err instanceof RaftDecodeError && err.code === 'raft-message-too-large')
  })

  it('random bytes and mutated messages only ever raise the typed error', () => {
    const prng = new Prng(1234)
    const valid = encodeRaftMessage(full)
    let rejected = 0
    for (let i = 0; i < 3000; i++) {
      const bytes = i % 2 === 0 ? prng.bytes(prng.intInclusive(0, 64)) : Uint8Array.from(valid)
      if (i % 2 === 1) for (let k = 0; k < 3; k++) bytes[prng.intInclusive(0, bytes.length - 1)] = prng.nextU32() & 0xff
      try {
        const m = decodeRaftMessage(bytes)
        assert.equal(typeof m.term, 'number')
      } catch (err) {
        if (!(err instanceof RaftDecodeError)) throw err
        rejected++
      }
    }
    assert.ok(rejected > 1500, 'most garbage is rejected')
  })

  it('rejects structurally wrong fields', () => {
    const bad = { ...full, term: -1 }
    assert.throws(() => decodeRaftMessage(encodeRaftMessage(bad)), RaftDecodeError)
    const longId = { ...full, from: 'x'.repeat(300) }
    assert.throws(() => decodeRaftMessage(encodeRaftMessage(longId)), RaftDecodeError)
  })
})

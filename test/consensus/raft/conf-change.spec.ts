import assert from 'node:assert/strict'
import { RaftDecodeError, applyConfChange, decodeConfChange, encodeConfChange, nextPromotion, validConfChange } from '../../../consensus/raft/index.js'

const conf = { voters: ['a', 'b', 'c'], learners: ['d', 'e'] }

describe('raft: membership changes', () => {
  it('encodes and validates single-server changes', () => {
    assert.deepEqual(decodeConfChange(encodeConfChange({ type: 'promote', node: 'd' })), { type: 'promote', node: 'd' })
    assert.throws(() => decodeConfChange(new Uint8Array([1, 2, 3])), RaftDecodeError)
    assert.ok(validConfChange(conf, { type: 'add-learner', node: 'f' }))
    assert.ok(!validConfChange(conf, { type: 'add-learner', node: 'a' }))
    assert.ok(!validConfChange(conf, { type: 'promote', node: 'a' }))
    assert.ok(!validConfChange({ voters: ['a'], learners: [] }, { type: 'remove', node: 'a' }), 'never remove the last voter')
    assert.deepEqual(applyConfChange(conf, { type: 'promote', node: 'e' }), { voters: ['a', 'b', 'c', 'e'], learners: ['d'] })
    assert.deepEqual(applyConfChange(conf, { type: 'remove', node: 'b' }), { voters: ['a', 'c'], learners: ['d', 'e'] })
  })

  it('promotes the most caught-up active learner, only up to the voter target', () => {
    const progress = new Map([
      ['d', { match: 90, recentActive: true }],
      ['e', { match: 99, recentActive: true }]
    ])
    assert.deepEqual(nextPromotion(conf, progress, 100, 5, 5), { type: 'promote', node: 'e' })
    assert.equal(nextPromotion(conf, progress, 100, 3, 5), undefined, 'target reached')
    progress.set('e', { match: 99, recentActive: false })
    assert.equal(nextPromotion(conf, progress, 100, 5, 5), undefined, 'd lags too far, e is inactive')
    assert.deepEqual(nextPromotion(conf, progress, 100, 5, 10), { type: 'promote', node: 'd' })
  })
})

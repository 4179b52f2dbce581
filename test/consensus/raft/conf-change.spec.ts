import assert from 'node:assert/strict'
import { RaftDecodeError, applyConfChange, deadVoterRemoval, decodeConfChange, encodeConfChange, keepsQuorumWithout, nextPromotion, validConfChange } from '../../../consensus/raft/index.js'

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

  it('carries an opaque context with a change, bounded', () => {
    const context = new Uint8Array([7, 7])
    assert.deepEqual(decodeConfChange(encodeConfChange({ type: 'remove', node: 'b', context })), { type: 'remove', node: 'b', context })
    assert.throws(() => decodeConfChange(encodeConfChange({ type: 'remove', node: 'b', context: new Uint8Array(257) })), RaftDecodeError)
  })

  it('refuses a removal that leaves the voters without a healthy quorum (etcd strict reconfig check)', () => {
    const all = (): boolean => true
    assert.ok(keepsQuorumWithout(conf, 'c', all), '3 → 2 healthy voters')
    assert.ok(keepsQuorumWithout({ voters: ['a', 'b'], learners: [] }, 'b', all), 'a two-voter org keeps its founder')
    assert.ok(!keepsQuorumWithout({ voters: ['a'], learners: [] }, 'a', all), 'never the last voter')
    assert.ok(keepsQuorumWithout(conf, 'c', (v) => v !== 'c'), 'removing the dead one')
    assert.ok(!keepsQuorumWithout(conf, 'b', (v) => v !== 'c'), 'removing a live one while another is dead: 1 of 2 left healthy')
  })

  describe('autopilot: dead voter cleanup', () => {
    const DEAD_MS = 60_000
    const HEALTHY_MS = 1_000
    const silence = (ms: Record<string, number>) => (v: string): number => ms[v] ?? 0

    it('removes the voter silent longest past the threshold, then a healthy learner takes its place', () => {
      const five = { voters: ['a', 'b', 'c', 'd', 'e'], learners: ['f', 'g'] }
      const silent = silence({ c: 70_000, e: 90_000 })
      assert.deepEqual(deadVoterRemoval(five, 'a', silent, DEAD_MS, HEALTHY_MS), { type: 'remove', node: 'e' })
      const after = applyConfChange(five, { type: 'remove', node: 'e' })
      const progress = new Map([['f', { match: 10, recentActive: true }], ['g', { match: 100, recentActive: false }]])
      assert.deepEqual(nextPromotion(after, progress, 100, 5, 100), { type: 'promote', node: 'f' }, 'the healthy learner, not the inactive one')
      // Next round: c goes too (4 voters, 3 healthy → 3 voters, 3 healthy).
      assert.deepEqual(deadVoterRemoval(applyConfChange(after, { type: 'promote', node: 'f' }), 'a', silent, DEAD_MS, HEALTHY_MS), { type: 'remove', node: 'c' })
    })

    it('leaves alone voters silent for less than the threshold, the leader itself, and learners', () => {
      assert.equal(deadVoterRemoval(conf, 'a', silence({ b: 59_000, d: 1e9 }), DEAD_MS, HEALTHY_MS), undefined)
      assert.equal(deadVoterRemoval({ voters: ['a'], learners: [] }, 'a', silence({ a: 1e9 }), DEAD_MS, HEALTHY_MS), undefined)
    })

    it('removes nothing while the voters left would lack a healthy quorum', () => {
      // c is dead, b was heard from 30 s ago (not dead, not healthy): {a, b} would have 1 healthy of 2.
      assert.equal(deadVoterRemoval(conf, 'a', silence({ b: 30_000, c: 120_000 }), DEAD_MS, HEALTHY_MS), undefined)
      assert.deepEqual(deadVoterRemoval(conf, 'a', silence({ b: 500, c: 120_000 }), DEAD_MS, HEALTHY_MS), { type: 'remove', node: 'c' })
    })
  })
})

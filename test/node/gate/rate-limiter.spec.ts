import assert from 'node:assert/strict'
import { describe, it } from 'mocha'
import { RateLimiter } from '../../../node/gate/rate-limiter.js'

describe('RateLimiter (policy token buckets)', () => {
  it('starts full, refills continuously and caps at perMinute', () => {
    const limiter = new RateLimiter()
    const take = (nowMs: number): boolean => limiter.take([{ key: 'k', perMinute: 2 }], nowMs).ok
    assert.deepEqual([take(0), take(0), take(0)], [true, true, false])
    assert.equal(take(29_999), false)
    assert.equal(take(30_000), true)
    assert.equal(take(10 * 60_000), true, 'an hour idle refills to the cap...')
    assert.equal(take(10 * 60_000), true)
    assert.equal(take(10 * 60_000), false, '...and no further')
  })

  it('is all-or-nothing across buckets and says which one is empty', () => {
    const limiter = new RateLimiter()
    assert.equal(limiter.take([{ key: 'small', perMinute: 1 }], 0).ok, true)
    const result = limiter.take([{ key: 'big', perMinute: 60 }, { key: 'small', perMinute: 1 }], 0)
    assert.deepEqual(result, { ok: false, key: 'small', retryAfterMs: 60_000 })
    for (let i = 0; i < 60; i++) assert.equal(limiter.take([{ key: 'big', perMinute: 60 }], 0).ok, true, `token ${i}`)
    assert.equal(limiter.take([{ key: 'big', perMinute: 60 }], 0).ok, false)
  })

  it('bounds its buckets by dropping the least recently used', () => {
    const limiter = new RateLimiter(2)
    const take = (key: string): boolean => limiter.take([{ key, perMinute: 1 }], 0).ok
    assert.deepEqual([take('a'), take('b'), take('a')], [true, true, false])
    assert.equal(take('c'), true) // evicts 'b', the least recently used
    assert.equal(limiter.size, 2)
    assert.equal(take('a'), false, "'a' was kept")
    assert.equal(take('b'), true, "'b' was dropped and starts full again")
  })

  it('treats a clock going backwards as no time passing', () => {
    const limiter = new RateLimiter()
    const take = (nowMs: number): boolean => limiter.take([{ key: 'k', perMinute: 1 }], nowMs).ok
    assert.equal(take(60_000), true)
    assert.equal(take(0), false)
    assert.equal(take(60_000), false)
    assert.equal(take(120_000), true)
  })
})

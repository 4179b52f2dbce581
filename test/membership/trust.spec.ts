import assert from 'node:assert/strict'
import { describe, it } from 'mocha'
import {
  TrustBook, TrustError, EVENT_RATES, TRUST_EVENT_TYPES, TRUST_SCORE_THRESHOLDS, TRUST_APP_SPECIFIC_WEIGHT,
  TRUST_TOPIC_SCORE_CAP_MAX, DEFAULT_TRUST_OPTIONS, gossipsubAppScore, type TrustEventType
} from '../../membership/trust.js'

const HOUR_MS = 3_600_000
const peer = (n: number): string => n.toString(16).padStart(64, '0')
const A = peer(0xa)
const B = peer(0xb)

describe('TrustBook', () => {
  it('starts every peer at the prior without storing it', () => {
    const book = new TrustBook({ prior: 0.6 })
    assert.equal(book.score(A, 0), 0.6)
    assert.equal(book.isQuarantined(A, 0), false)
    assert.equal(book.size, 0)
  })

  for (const type of TRUST_EVENT_TYPES) {
    const raises = EVENT_RATES[type] > 0
    it(`'${type}' ${raises ? 'raises' : 'lowers'} the score by its rate`, () => {
      const book = new TrustBook()
      const { score } = book.record(A, type, 1000)
      const expected = raises ? 0.5 + EVENT_RATES[type] * 0.5 : 0.5 * (1 + EVENT_RATES[type])
      assert.ok(Math.abs(score - expected) < 1e-12, `${score} != ${expected}`)
      assert.equal(raises, score > 0.5)
      assert.equal(book.score(A, 1000), score)
    })
  }

  it('good events raise slowly and never past 1', () => {
    const book = new TrustBook()
    const first = book.record(A, 'valid-message', 0).score
    assert.ok(first - 0.5 < 0.01)
    let score = first
    for (let i = 0; i < 2000; i++) score = book.record(A, 'completed-work', 0).score
    assert.ok(score <= 1 && score > 0.999)
  })

  for (const [type, count] of [['equivocation', 1], ['invalid-signature', 1], ['replay', 5], ['policy-violation', 5]] as Array<[TrustEventType, number]>) {
    it(`${count} '${type}' event(s) quarantine a peer at the prior`, () => {
      const book = new TrustBook()
      const results = Array.from({ length: count }, () => book.record(A, type, 0))
      assert.equal(book.isQuarantined(A, 0), true)
      assert.deepEqual(results.map((r) => r.crossed), [...Array(count - 1).fill(undefined), 'entered-quarantine'])
    })
  }

  it('mild events alone do not quarantine after one occurrence', () => {
    for (const type of ['rate-limit', 'timeout', 'malformed'] as const) {
      const book = new TrustBook()
      assert.equal(book.record(A, type, 0).crossed, undefined)
      assert.equal(book.isQuarantined(A, 0), false)
    }
  })

  it('drifts back toward the prior by the exact half-life formula', () => {
    const book = new TrustBook({ halfLifeMs: HOUR_MS })
    book.record(A, 'equivocation', 0) // 0.5 -> 0.05
    assert.ok(Math.abs(book.score(A, 0) - 0.05) < 1e-12)
    assert.ok(Math.abs(book.score(A, HOUR_MS) - (0.5 - 0.45 / 2)) < 1e-12)
    assert.ok(Math.abs(book.score(A, 2 * HOUR_MS) - (0.5 - 0.45 / 4)) < 1e-12)
    assert.ok(Math.abs(book.score(A, HOUR_MS / 2) - (0.5 - 0.45 * 0.5 ** 0.5)) < 1e-12)
    // Leaves quarantine after log2(0.45 / 0.3) half-lives.
    const leaveMs = Math.log2(0.45 / 0.3) * HOUR_MS
    assert.equal(book.isQuarantined(A, leaveMs - 1000), true)
    assert.equal(book.isQuarantined(A, leaveMs + 1000), false)
    // Good peers drift down toward the prior too.
    for (let i = 0; i < 10; i++) book.record(B, 'completed-work', 0)
    const high = book.score(B, 0)
    assert.ok(Math.abs(book.score(B, HOUR_MS) - (0.5 + (high - 0.5) / 2)) < 1e-12)
  })

  it('applies drift before the event, and a clock going backwards counts as no time', () => {
    const book = new TrustBook({ halfLifeMs: HOUR_MS })
    book.record(A, 'equivocation', 0)
    const { score } = book.record(A, 'completed-work', HOUR_MS)
    assert.ok(Math.abs(score - (0.275 + 0.05 * (1 - 0.275))) < 1e-12)
    assert.equal(book.score(A, -5 * HOUR_MS), book.score(A, HOUR_MS))
  })

  it('good behaviour lifts a peer out of quarantine and reports it once', () => {
    const book = new TrustBook()
    book.record(A, 'invalid-signature', 0) // 0.15
    const crossings = Array.from({ length: 3 }, () => book.record(A, 'completed-work', 0).crossed)
    assert.deepEqual(crossings, [undefined, 'left-quarantine', undefined])
    assert.equal(book.isQuarantined(A, 0), false)
  })

  it('crossings() reports drift out of quarantine exactly once', () => {
    const book = new TrustBook({ halfLifeMs: HOUR_MS })
    book.record(A, 'equivocation', 0)
    book.record(B, 'valid-message', 0)
    assert.deepEqual(book.crossings(HOUR_MS / 10), [])
    const later = book.crossings(HOUR_MS)
    assert.equal(later.length, 1)
    assert.equal(later[0]!.peer, A)
    assert.equal(later[0]!.crossed, 'left-quarantine')
    assert.deepEqual(book.crossings(2 * HOUR_MS), [])
  })

  it('keeps a bounded ring of recent events per peer', () => {
    const book = new TrustBook({ eventsPerPeerMax: 3 })
    const types: TrustEventType[] = ['valid-message', 'timeout', 'malformed', 'replay', 'completed-work']
    types.forEach((type, i) => book.record(A, type, i * 10))
    const [entry] = book.snapshot(100)
    assert.deepEqual(entry!.events.map((e) => [e.type, e.atMs]), [['malformed', 20], ['replay', 30], ['completed-work', 40]])
    for (const e of entry!.events) assert.ok(e.scoreAfter >= 0 && e.scoreAfter <= 1)
    assert.equal(entry!.events.at(-1)!.scoreAfter, book.score(A, 40))
    assert.ok(entry!.events[0]!.delta < 0 && entry!.events[2]!.delta > 0)
  })

  it('bounds the peers, evicting the one closest to the prior, oldest first', () => {
    const book = new TrustBook({ peersMax: 3, halfLifeMs: HOUR_MS })
    book.record(peer(1), 'equivocation', 0)        // far from the prior
    book.record(peer(2), 'valid-message', 0)        // close to the prior, older
    book.record(peer(3), 'valid-message', 10)       // equally close, newer
    const result = book.record(peer(4), 'valid-message', 20)
    assert.equal(result.evicted, peer(2))
    assert.equal(book.size, 3)
    assert.deepEqual(book.snapshot(20).map((p) => p.peer).sort(), [peer(1), peer(3), peer(4)])
    assert.equal(book.record(peer(1), 'timeout', 30).evicted, undefined)
  })

  it("pins a 'revoked' peer at 0: no drift, no good event and no restart lifts it", () => {
    const book = new TrustBook({ halfLifeMs: HOUR_MS })
    book.record(A, 'completed-work', 0)
    const result = book.record(A, 'revoked', 10)
    assert.deepEqual([result.score, result.crossed], [0, 'entered-quarantine'])
    assert.equal(book.isBanned(A), true)
    assert.equal(book.isBanned(B), false)
    for (let i = 0; i < 50; i++) assert.equal(book.record(A, 'completed-work', 20 + i).score, 0)
    assert.equal(book.score(A, 100 * HOUR_MS), 0, 'drift does not pull a banned peer back to the prior')
    assert.deepEqual(book.crossings(100 * HOUR_MS), [])
    const copy = TrustBook.deserialize(JSON.parse(JSON.stringify(book.serialize())), { halfLifeMs: HOUR_MS })
    assert.equal(copy.score(A, 200 * HOUR_MS), 0)
    assert.deepEqual(copy.snapshot(0).map((p) => [p.peer, p.banned, p.quarantined]), [[A, true, true]])
    assert.ok(gossipsubAppScore(book.score(A, 0)) <= gossipsubAppScore(0.0001), 'gossipsub scores it at the bottom')
    assert.throws(() => TrustBook.deserialize({ [A]: { score: 0, updatedMs: 0, quarantined: true, banned: false, events: [] } }), TrustError)
  })

  it('evicts banned peers last', () => {
    const book = new TrustBook({ peersMax: 2 })
    book.record(peer(1), 'revoked', 0)
    book.record(peer(2), 'equivocation', 0)
    assert.equal(book.record(peer(3), 'valid-message', 10).evicted, peer(2))
    assert.equal(book.record(peer(4), 'valid-message', 20).evicted, peer(3))
    assert.equal(book.isBanned(peer(1)), true)
  })

  it('snapshot lists peers lowest score first with quarantine flags', () => {
    const book = new TrustBook()
    book.record(A, 'completed-work', 0)
    book.record(B, 'equivocation', 0)
    const snap = book.snapshot(0)
    assert.deepEqual(snap.map((p) => [p.peer, p.quarantined]), [[B, true], [A, false]])
  })

  it('serialize and deserialize round-trip, keeping reported quarantine state', () => {
    const book = new TrustBook({ halfLifeMs: HOUR_MS })
    book.record(A, 'equivocation', 0)
    book.record(B, 'completed-work', 5)
    const copy = TrustBook.deserialize(JSON.parse(JSON.stringify(book.serialize())), { halfLifeMs: HOUR_MS })
    assert.deepEqual(copy.snapshot(HOUR_MS / 3), book.snapshot(HOUR_MS / 3))
    assert.deepEqual(copy.crossings(HOUR_MS), book.crossings(HOUR_MS))
    assert.equal(copy.crossings(HOUR_MS).length, 0)
  })

  it('rejects malformed records with TrustError', () => {
    const good = { score: 0.3, updatedMs: 0, quarantined: false, events: [] }
    const bad: unknown[] = [
      null, [], { x: good }, { [A]: { ...good, score: 1.5 } }, { [A]: { ...good, score: '0.3' } },
      { [A]: { ...good, updatedMs: 0.5 } }, { [A]: { ...good, events: [{ type: 'hug', atMs: 0, delta: 0, scoreAfter: 0.3 }] } },
      { [A]: { ...good, events: {} } }, { [A]: { ...good, quarantined: 'no' } }
    ]
    for (const records of bad) assert.throws(() => TrustBook.deserialize(records), TrustError, JSON.stringify(records))
    assert.throws(() => TrustBook.deserialize({ [A]: good, [B]: good }, { peersMax: 1 }), TrustError)
  })

  it('asserts on programmer errors: bad peer keys and unknown events', () => {
    const book = new TrustBook()
    assert.throws(() => book.record('ABC', 'timeout', 0))
    assert.throws(() => book.record(A, 'hug' as TrustEventType, 0))
    assert.throws(() => new TrustBook({ quarantineBelow: 0.7 }))
  })
})

describe('gossipsubAppScore', () => {
  it('is mild for healthy peers and sinks quarantined ones below the graylist', () => {
    const topicScoreMax = TRUST_TOPIC_SCORE_CAP_MAX
    const weighted = (s: number): number => gossipsubAppScore(s) * TRUST_APP_SPECIFIC_WEIGHT
    assert.equal(weighted(DEFAULT_TRUST_OPTIONS.prior), 0)
    assert.ok(weighted(1) > 0)
    assert.ok(weighted(DEFAULT_TRUST_OPTIONS.quarantineBelow) > TRUST_SCORE_THRESHOLDS.gossipThreshold)
    for (const s of [0, 0.05, 0.19999]) {
      assert.ok(weighted(s) + topicScoreMax < TRUST_SCORE_THRESHOLDS.graylistThreshold, `score ${s}`)
    }
    // Monotone: a worse peer never scores higher.
    for (let i = 0; i < 100; i++) assert.ok(gossipsubAppScore(i / 100) <= gossipsubAppScore((i + 1) / 100))
  })
})

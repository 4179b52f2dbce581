import assert from 'node:assert/strict'
import { FedmeshError } from '../base/errors.js'

// Behavioural trust: what this node has seen each peer do, as a score in [0, 1]. Pure: no clock, no
// I/O; every function takes nowMs (wall-clock ms, so persisted timestamps survive a restart).
//
// Model, per observer and per peer (peer = ed25519 public key, 64 lowercase hex):
//   start        s = prior                                         (default 0.5)
//   drift        s(t) = prior + (s(t0) - prior) * 0.5^((t - t0) / halfLifeMs)
//                exact exponential decay toward the prior, applied lazily when a peer is read or
//                updated; a clock that goes backwards counts as no time passing.
//   good event   s' = s + rate * (1 - s)    moves `rate` of the distance to 1 (slow: 0.01, 0.05)
//   bad event    s' = s * (1 - rate)        drops `rate` of the score (0.05 .. 0.9)
//   EVENT_RATES lists the rates. From the prior, one 'equivocation' (0.5 -> 0.05) or one
//   'invalid-signature' (0.5 -> 0.15) quarantines a peer; so do five 'replay' or
//   'policy-violation' events (0.5 * 0.8^4 = 0.205, 0.5 * 0.8^5 = 0.164).
//   Both updates keep s in [0, 1].
//   revoked      s' = 0, pinned: no drift and no later event lifts it. Revocation is the
//                federation's decision about the peer's organisation, not evidence about its
//                behaviour, so the model's forgiveness (drift, good events) must not undo it; the
//                pin is a flag on the peer's record ('banned'), persisted with it.
//   quarantine   s < quarantineBelow (default 0.2): the node refuses the peer's requests. A peer
//                leaves quarantine by good behaviour or by drift (0.05 -> 0.2 takes
//                log2(0.45 / 0.3) = 0.585 half-lives). record() and crossings() report every
//                crossing exactly once, so the shell can audit it and emit an event.
// Bounds: peersMax peers (a new peer evicts the one whose score is closest to the prior, oldest
// first: it carries the least information, and a flood of fresh identities cannot push a
// quarantined peer out; banned peers go last); eventsPerPeerMax recent events per peer.

export const TRUST_EVENT_TYPES = [
  'valid-message', 'completed-work',
  'invalid-signature', 'replay', 'malformed', 'policy-violation', 'rate-limit', 'timeout', 'equivocation', 'revoked'
] as const
export type TrustEventType = typeof TRUST_EVENT_TYPES[number]

/** Positive rates raise (fraction of the distance to 1), negative rates lower (fraction of s). */
export const EVENT_RATES: Readonly<Record<TrustEventType, number>> = {
  'valid-message': 0.01,
  'completed-work': 0.05,
  'rate-limit': -0.05,
  timeout: -0.05,
  malformed: -0.1,
  replay: -0.2,
  'policy-violation': -0.2,
  'invalid-signature': -0.7,
  equivocation: -0.9,
  revoked: -1
}

export interface TrustOptions {
  prior: number
  halfLifeMs: number
  quarantineBelow: number
  peersMax: number
  eventsPerPeerMax: number
}

export const DEFAULT_TRUST_OPTIONS: Readonly<TrustOptions> = {
  prior: 0.5,
  halfLifeMs: 6 * 60 * 60 * 1000,
  quarantineBelow: 0.2,
  peersMax: 10_000,
  eventsPerPeerMax: 16
}

export interface TrustEvent {
  type: TrustEventType
  atMs: number
  /** Score change caused by the event itself (drift before it is not included). */
  delta: number
  scoreAfter: number
}

export type QuarantineCrossing = 'entered-quarantine' | 'left-quarantine'

export interface TrustRecordResult {
  score: number
  crossed?: QuarantineCrossing
  /** A peer evicted to make room; the store deletes its record. */
  evicted?: string
}

export interface PeerTrust {
  peer: string
  score: number
  quarantined: boolean
  /** Pinned at 0 by a 'revoked' event: its organisation was revoked. */
  banned: boolean
  updatedMs: number
  events: TrustEvent[]
}

/** The persisted form of one peer: score as of updatedMs, before drift. */
export interface PeerTrustRecord {
  score: number
  updatedMs: number
  /** Quarantine state last reported, so a crossing by drift while stopped is still reported. */
  quarantined: boolean
  /** Set by a 'revoked' event: the score is 0 for good (absent when false). */
  banned?: true
  events: TrustEvent[]
}

export class TrustError extends FedmeshError {
  constructor (message: string) {
    super('trust-record-invalid', message)
    this.name = 'TrustError'
  }
}

const PEER_KEY = /^[0-9a-f]{64}$/

export function isPeerKey (value: unknown): value is string {
  return typeof value === 'string' && PEER_KEY.test(value)
}

/** The drifted score: exact exponential decay toward the prior. */
export function driftedScore (score: number, elapsedMs: number, prior: number, halfLifeMs: number): number {
  if (elapsedMs <= 0) return score
  return prior + (score - prior) * 0.5 ** (elapsedMs / halfLifeMs)
}

/** The score after one event, before any drift. */
export function applyEvent (score: number, type: TrustEventType): number {
  const rate = EVENT_RATES[type]
  const next = rate >= 0 ? score + rate * (1 - score) : score * (1 + rate)
  assert.ok(next >= 0 && next <= 1, `trust score out of range: ${next}`)
  return next
}

export class TrustBook {
  readonly options: Readonly<TrustOptions>
  readonly #peers = new Map<string, PeerTrustRecord>()

  constructor (options: Partial<TrustOptions> = {}) {
    this.options = { ...DEFAULT_TRUST_OPTIONS, ...options }
    const { prior, halfLifeMs, quarantineBelow, peersMax, eventsPerPeerMax } = this.options
    assert.ok(prior >= 0 && prior <= 1, 'prior must be in [0, 1]')
    assert.ok(quarantineBelow >= 0 && quarantineBelow <= prior, 'quarantineBelow must be in [0, prior]')
    assert.ok(halfLifeMs > 0, 'halfLifeMs must be positive')
    assert.ok(Number.isSafeInteger(peersMax) && peersMax > 0, 'peersMax must be a positive integer')
    assert.ok(Number.isSafeInteger(eventsPerPeerMax) && eventsPerPeerMax >= 0, 'eventsPerPeerMax must be an integer >= 0')
  }

  get size (): number {
    return this.#peers.size
  }

  record (peer: string, type: TrustEventType, nowMs: number): TrustRecordResult {
    assert.ok(isPeerKey(peer), `peer must be 64 lowercase hex: ${peer}`)
    assert.ok(Object.hasOwn(EVENT_RATES, type), `unknown trust event: ${type}`)
    let evicted: string | undefined
    let entry = this.#peers.get(peer)
    if (entry === undefined) {
      if (this.#peers.size >= this.options.peersMax) evicted = this.#evictOne(nowMs)
      entry = { score: this.options.prior, updatedMs: nowMs, quarantined: this.#below(this.options.prior), events: [] }
      this.#peers.set(peer, entry)
    }
    const before = this.#current(entry, nowMs)
    if (type === 'revoked') entry.banned = true
    const score = entry.banned === true ? 0 : applyEvent(before, type)
    entry.score = score
    entry.updatedMs = Math.max(entry.updatedMs, nowMs)
    entry.events.push({ type, atMs: nowMs, delta: score - before, scoreAfter: score })
    if (entry.events.length > this.options.eventsPerPeerMax) entry.events.shift()
    const crossed = this.#crossing(entry, score)
    return {
      score,
      ...(crossed === undefined ? {} : { crossed }),
      ...(evicted === undefined ? {} : { evicted })
    }
  }

  /** The current score (the prior for a peer never seen). Reading does not change the book. */
  score (peer: string, nowMs: number): number {
    const entry = this.#peers.get(peer)
    return entry === undefined ? this.options.prior : this.#current(entry, nowMs)
  }

  isQuarantined (peer: string, nowMs: number): boolean {
    return this.#below(this.score(peer, nowMs))
  }

  isBanned (peer: string): boolean {
    return this.#peers.get(peer)?.banned === true
  }

  /** Crossings caused by drift since they were last reported (peers in key order). */
  crossings (nowMs: number): Array<{ peer: string, crossed: QuarantineCrossing, score: number }> {
    const out: Array<{ peer: string, crossed: QuarantineCrossing, score: number }> = []
    for (const peer of [...this.#peers.keys()].sort()) {
      const entry = this.#peers.get(peer)!
      const score = this.#current(entry, nowMs)
      const crossed = this.#crossing(entry, score)
      if (crossed !== undefined) out.push({ peer, crossed, score })
    }
    return out
  }

  /** Every known peer with its current score and recent events, lowest score first. */
  snapshot (nowMs: number): PeerTrust[] {
    const out: PeerTrust[] = []
    for (const [peer, entry] of this.#peers) {
      const score = this.#current(entry, nowMs)
      const events = entry.events.map((e) => ({ ...e }))
      out.push({ peer, score, quarantined: this.#below(score), banned: entry.banned === true, updatedMs: entry.updatedMs, events })
    }
    return out.sort((a, b) => a.score - b.score || (a.peer < b.peer ? -1 : 1))
  }

  /** One peer's persisted form, or undefined if the book does not hold it. */
  serializePeer (peer: string): PeerTrustRecord | undefined {
    const entry = this.#peers.get(peer)
    return entry === undefined ? undefined : { ...entry, events: entry.events.map((e) => ({ ...e })) }
  }

  serialize (): Record<string, PeerTrustRecord> {
    const out: Record<string, PeerTrustRecord> = {}
    for (const peer of [...this.#peers.keys()].sort()) out[peer] = this.serializePeer(peer)!
    return out
  }

  /** Rebuilds a book from untrusted records (validated; throws TrustError on the first bad one). */
  static deserialize (records: unknown, options: Partial<TrustOptions> = {}): TrustBook {
    if (typeof records !== 'object' || records === null || Array.isArray(records)) {
      throw new TrustError('trust records must be an object keyed by peer')
    }
    const book = new TrustBook(options)
    const peers = Object.keys(records)
    if (peers.length > book.options.peersMax) {
      throw new TrustError(`${peers.length} trust records exceed peersMax ${book.options.peersMax}`)
    }
    for (const peer of peers) book.restorePeer(peer, (records as Record<string, unknown>)[peer])
    return book
  }

  /** Adds one peer's persisted record (validated). Returns the peer evicted to make room, if any. */
  restorePeer (peer: string, record: unknown): string | undefined {
    if (!isPeerKey(peer)) throw new TrustError(`trust record key is not a peer key: ${String(peer).slice(0, 80)}`)
    const parsed = parsePeerTrustRecord(record, this.options.eventsPerPeerMax)
    let evicted: string | undefined
    if (!this.#peers.has(peer) && this.#peers.size >= this.options.peersMax) evicted = this.#evictOne(parsed.updatedMs)
    this.#peers.set(peer, parsed)
    return evicted
  }

  #current (entry: PeerTrustRecord, nowMs: number): number {
    if (entry.banned === true) return 0
    return driftedScore(entry.score, nowMs - entry.updatedMs, this.options.prior, this.options.halfLifeMs)
  }

  #below (score: number): boolean {
    return score < this.options.quarantineBelow
  }

  #crossing (entry: PeerTrustRecord, score: number): QuarantineCrossing | undefined {
    const quarantined = this.#below(score)
    if (quarantined === entry.quarantined) return undefined
    entry.quarantined = quarantined
    return quarantined ? 'entered-quarantine' : 'left-quarantine'
  }

  #evictOne (nowMs: number): string {
    let victim: string | undefined
    let distanceMin = Infinity
    let updatedMsMin = Infinity
    for (const [peer, entry] of this.#peers) {
      // Banned peers rank past every unbanned one (distances are at most 1).
      const distance = Math.abs(this.#current(entry, nowMs) - this.options.prior) + (entry.banned === true ? 2 : 0)
      if (victim === undefined || distance < distanceMin || (distance === distanceMin && entry.updatedMs < updatedMsMin)) {
        victim = peer
        distanceMin = distance
        updatedMsMin = entry.updatedMs
      }
    }
    assert.ok(victim !== undefined, 'eviction from an empty trust book')
    this.#peers.delete(victim)
    return victim
  }
}

function parsePeerTrustRecord (value: unknown, eventsPerPeerMax: number): PeerTrustRecord {
  if (typeof value !== 'object' || value === null) throw new TrustError('trust record must be an object')
  const { score, updatedMs, quarantined, banned, events } = value as Record<string, unknown>
  if (!isUnitNumber(score)) throw new TrustError('trust record score must be a number in [0, 1]')
  if (!Number.isSafeInteger(updatedMs)) throw new TrustError('trust record updatedMs must be an integer')
  if (typeof quarantined !== 'boolean') throw new TrustError('trust record quarantined must be a boolean')
  if (!Array.isArray(events)) throw new TrustError('trust record events must be an array')
  if (banned !== undefined && banned !== true) throw new TrustError('trust record banned must be true when present')
  return {
    score,
    updatedMs: updatedMs as number,
    quarantined,
    ...(banned === true ? { banned } : {}),
    events: events.slice(-eventsPerPeerMax).map(parseTrustEvent)
  }
}

function parseTrustEvent (value: unknown): TrustEvent {
  if (typeof value !== 'object' || value === null) throw new TrustError('trust event must be an object')
  const { type, atMs, delta, scoreAfter } = value as Record<string, unknown>
  if (typeof type !== 'string' || !Object.hasOwn(EVENT_RATES, type)) throw new TrustError('trust event has an unknown type')
  if (!Number.isSafeInteger(atMs)) throw new TrustError('trust event atMs must be an integer')
  if (typeof delta !== 'number' || !(Math.abs(delta) <= 1)) throw new TrustError('trust event delta must be in [-1, 1]')
  if (!isUnitNumber(scoreAfter)) throw new TrustError('trust event scoreAfter must be in [0, 1]')
  return { type: type as TrustEventType, atMs: atMs as number, delta, scoreAfter }
}

function isUnitNumber (value: unknown): value is number {
  return typeof value === 'number' && value >= 0 && value <= 1
}

// gossipsub (P5) adds appSpecificScore(peer) * appSpecificWeight to its own score. The mapping is
// mild for healthy peers and overwhelming for quarantined ones:
//   s >= quarantineBelow  ->  10 * (s - prior)                          in [-3, +5] with defaults
//   s <  quarantineBelow  ->  -1000 - 1000 * (quarantineBelow - s) / quarantineBelow   in [-2000, -1000]
// Use it with appSpecificWeight = TRUST_APP_SPECIFIC_WEIGHT (1) and TRUST_SCORE_THRESHOLDS
// (gossipsub's defaults: gossip -10, publish -50, graylist -80): a healthy peer never goes below
// gossipThreshold on trust alone, while a quarantined peer sits far below graylistThreshold, so
// gossipsub drops its RPCs and routes around it, as long as topic scores stay capped below 920
// (set scoreParams.topicScoreCap <= TRUST_TOPIC_SCORE_CAP_MAX).
export const TRUST_APP_SPECIFIC_WEIGHT = 1
export const TRUST_TOPIC_SCORE_CAP_MAX = 900
/** gossipsub's PeerScoreThresholds (the same fields; the libp2p transport hands them over). */
export interface GossipScoreThresholds {
  gossipThreshold: number
  publishThreshold: number
  graylistThreshold: number
  acceptPXThreshold: number
  opportunisticGraftThreshold: number
}

export const TRUST_SCORE_THRESHOLDS: Readonly<GossipScoreThresholds> = {
  gossipThreshold: -10,
  publishThreshold: -50,
  graylistThreshold: -80,
  acceptPXThreshold: 10,
  opportunisticGraftThreshold: 20
}
const HEALTHY_APP_SCORE_SCALE = 10
const QUARANTINED_APP_SCORE = -1000

export function gossipsubAppScore (
  score: number,
  options: Pick<TrustOptions, 'prior' | 'quarantineBelow'> = DEFAULT_TRUST_OPTIONS
): number {
  assert.ok(score >= 0 && score <= 1, `trust score out of range: ${score}`)
  const { prior, quarantineBelow } = options
  if (score >= quarantineBelow) return HEALTHY_APP_SCORE_SCALE * (score - prior)
  return QUARANTINED_APP_SCORE * (1 + (quarantineBelow - score) / quarantineBelow)
}

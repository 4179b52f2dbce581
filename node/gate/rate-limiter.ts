import assert from 'node:assert/strict'

// Token buckets keyed by string, with time passed in (pure). A bucket holds up to perMinute tokens,
// refills continuously at perMinute per 60 s and starts full. take() is all-or-nothing across keys,
// so a request limited by one bucket costs nothing from the others. The map is bounded: at
// bucketsMax the least recently used bucket is dropped, which at worst refills that one key early
// (an attacker would need bucketsMax keys in active use to exploit it).

export interface BucketRequest {
  key: string
  perMinute: number
}

export type TakeResult = { ok: true } | { ok: false, key: string, retryAfterMs: number }

interface Bucket {
  tokens: number
  updatedMs: number
}

const MINUTE_MS = 60_000

export class RateLimiter {
  readonly bucketsMax: number
  readonly #buckets = new Map<string, Bucket>()

  constructor (bucketsMax = 10_000) {
    assert.ok(Number.isSafeInteger(bucketsMax) && bucketsMax > 0, 'bucketsMax must be a positive integer')
    this.bucketsMax = bucketsMax
  }

  get size (): number {
    return this.#buckets.size
  }

  /** Takes one token from every bucket if each has one; otherwise takes none. */
  take (requests: ReadonlyArray<BucketRequest>, nowMs: number): TakeResult {
    const levels = requests.map(({ key, perMinute }) => {
      assert.ok(perMinute > 0, `perMinute must be positive: ${perMinute}`)
      return this.#level(key, perMinute, nowMs)
    })
    const empty = levels.findIndex((tokens) => tokens < 1)
    // A refused request still counts as use, so a key being held back is the last to be dropped.
    for (const [i, tokens] of levels.entries()) this.#store(requests[i]!.key, empty === -1 ? tokens - 1 : tokens, nowMs)
    assert.ok(this.#buckets.size <= this.bucketsMax)
    if (empty === -1) return { ok: true }
    const { key, perMinute } = requests[empty]!
    return { ok: false, key, retryAfterMs: Math.ceil((1 - levels[empty]!) * MINUTE_MS / perMinute) }
  }

  #level (key: string, perMinute: number, nowMs: number): number {
    const bucket = this.#buckets.get(key)
    if (bucket === undefined) return perMinute
    const elapsedMs = Math.max(0, nowMs - bucket.updatedMs)
    return Math.min(perMinute, bucket.tokens + elapsedMs * perMinute / MINUTE_MS)
  }

  #store (key: string, tokens: number, nowMs: number): void {
    const bucket = this.#buckets.get(key)
    // Re-insertion keeps the map in least-recently-used order.
    if (bucket !== undefined) this.#buckets.delete(key)
    else if (this.#buckets.size >= this.bucketsMax) this.#buckets.delete(this.#buckets.keys().next().value!)
    this.#buckets.set(key, { tokens, updatedMs: Math.max(nowMs, bucket?.updatedMs ?? nowMs) })
  }
}

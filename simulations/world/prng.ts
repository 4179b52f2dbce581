import type { Rng } from '../../base/clock.js'

// Seeded xoshiro128** (state expanded from the seed with splitmix32): the simulator's only source
// of randomness, so one seed replays a whole run exactly. Probabilities are ratios, not floats.

export class Prng implements Rng {
  #s0: number
  #s1: number
  #s2: number
  #s3: number

  constructor (readonly seed: number) {
    let x = seed >>> 0
    const next = (): number => {
      x = (x + 0x9e3779b9) >>> 0
      let z = x
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
      return (z ^ (z >>> 16)) >>> 0
    }
    this.#s0 = next()
    this.#s1 = next()
    this.#s2 = next()
    this.#s3 = next()
  }

  nextU32 (): number {
    const result = Math.imul(rotl(Math.imul(this.#s1, 5), 7), 9) >>> 0
    const t = (this.#s1 << 9) >>> 0
    this.#s2 ^= this.#s0
    this.#s3 ^= this.#s1
    this.#s1 ^= this.#s2
    this.#s0 ^= this.#s3
    this.#s2 ^= t
    this.#s3 = rotl(this.#s3, 11)
    this.#s0 >>>= 0
    this.#s1 >>>= 0
    this.#s2 >>>= 0
    return result
  }

  bytes (length: number): Uint8Array {
    const out = new Uint8Array(length)
    for (let i = 0; i < length; i++) out[i] = this.nextU32() & 0xff
    return out
  }

  /** Uniform in [min, max]. */
  intInclusive (min: number, max: number): number {
    return min + (this.nextU32() % (max - min + 1))
  }

  chance (numerator: number, denominator: number): boolean {
    return this.nextU32() % denominator < numerator
  }

  pick<T> (items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from an empty list')
    return items[this.nextU32() % items.length]!
  }

  shuffle<T> (items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.nextU32() % (i + 1)
      ;[items[i], items[j]] = [items[j]!, items[i]!]
    }
    return items
  }

  /** An independent stream (e.g. one per node) that does not perturb this one's later draws much. */
  fork (): Prng {
    return new Prng(this.nextU32())
  }
}

function rotl (x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0
}

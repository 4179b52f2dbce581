import type { Prng } from './world/prng.js'

// A simulated packet network (TigerBeetle's packet_simulator): one queue per directed link, each
// packet due at a random tick (so packets reorder), with loss, duplication, a per-link capacity,
// and partitions that block links one way or both. Delivery order is fully determined by the seed.

export interface NetworkOptions {
  delayTicksMin: number
  delayTicksMax: number
  /** Probabilities as numerator / 1000. */
  dropPerMille: number
  duplicatePerMille: number
  packetsPerLinkMax: number
}

export interface Packet { from: string, to: string, bytes: Uint8Array, dueTick: number, seq: number }

export interface NetworkStats { sent: number, delivered: number, dropped: number, duplicated: number, partitions: number }

export class SimNetwork {
  options: NetworkOptions
  readonly stats: NetworkStats = { sent: 0, delivered: 0, dropped: 0, duplicated: 0, partitions: 0 }
  readonly #prng: Prng
  readonly #links = new Map<string, Packet[]>()
  readonly #blocked = new Set<string>()
  #seq = 0

  constructor (prng: Prng, options: NetworkOptions) {
    this.#prng = prng
    this.options = options
  }

  send (from: string, to: string, bytes: Uint8Array, nowTick: number): void {
    this.stats.sent++
    const copies = this.#prng.chance(this.options.duplicatePerMille, 1000) ? 2 : 1
    if (copies === 2) this.stats.duplicated++
    for (let c = 0; c < copies; c++) {
      if (this.#blocked.has(link(from, to)) || this.#prng.chance(this.options.dropPerMille, 1000)) {
        this.stats.dropped++
        continue
      }
      const queue = this.#queue(from, to)
      if (queue.length >= this.options.packetsPerLinkMax) {
        this.stats.dropped++
        continue
      }
      const dueTick = nowTick + this.#prng.intInclusive(this.options.delayTicksMin, this.options.delayTicksMax)
      queue.push({ from, to, bytes, dueTick, seq: this.#seq++ })
    }
  }

  /** Packets due by nowTick, in (due tick, send order); packets on a link blocked meanwhile are lost. */
  deliver (nowTick: number): Packet[] {
    const due: Packet[] = []
    for (const [key, queue] of this.#links) {
      const keep: Packet[] = []
      for (const p of queue) {
        if (p.dueTick > nowTick) keep.push(p)
        else if (this.#blocked.has(key)) this.stats.dropped++
        else due.push(p)
      }
      this.#links.set(key, keep)
    }
    this.stats.delivered += due.length
    return due.sort((a, b) => (a.dueTick - b.dueTick) || (a.seq - b.seq))
  }

  /** Blocks from→to (one way); call twice for a symmetric cut. */
  block (from: string, to: string): void {
    this.#blocked.add(link(from, to))
  }

  /** Splits nodes into two sides; symmetric, or only side A → side B when oneWay. */
  partition (sideA: string[], sideB: string[], oneWay: boolean): void {
    this.stats.partitions++
    for (const a of sideA) {
      for (const b of sideB) {
        this.block(a, b)
        if (!oneWay) this.block(b, a)
      }
    }
  }

  heal (): void {
    this.#blocked.clear()
  }

  get partitioned (): boolean {
    return this.#blocked.size > 0
  }

  #queue (from: string, to: string): Packet[] {
    const key = link(from, to)
    let q = this.#links.get(key)
    if (q === undefined) {
      q = []
      this.#links.set(key, q)
    }
    return q
  }
}

function link (from: string, to: string): string {
  return `${from}>${to}`
}

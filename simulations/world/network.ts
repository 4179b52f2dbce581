import type { Prng } from './prng.js'
import type { SimClock, SimScheduler } from './scheduler.js'

// A simulated packet network (TigerBeetle's packet simulator, event-driven): every packet gets its
// own latency drawn from its link's profile (so packets reorder), may be lost or duplicated, counts
// against its link's capacity while in flight, and is lost if a partition blocks its link when it
// is sent or when it is due. Links are named by endpoint (a node's key); profiles may differ per
// link (inside an org vs between orgs). Every draw comes from the seed.

export interface LinkProfile {
  latencyMs: readonly [number, number]
  /** Probabilities as numerator / 1000. */
  dropPerMille: number
  duplicatePerMille: number
}

export interface NetworkStats { sent: number, delivered: number, dropped: number, duplicated: number, partitions: number }

export type Deliver<P> = (from: string, packet: P) => void

export class SimNetwork<P> {
  readonly stats: NetworkStats = { sent: 0, delivered: 0, dropped: 0, duplicated: 0, partitions: 0 }
  readonly #endpoints = new Map<string, { deliver: Deliver<P>, clock: SimClock }>()
  readonly #blocked = new Set<string>()
  readonly #inflight = new Map<string, number>()
  /** The wires' own clock, which never halts: a packet to a killed endpoint still leaves its link. */
  readonly #clock: SimClock

  constructor (
    readonly scheduler: SimScheduler,
    readonly prng: Prng,
    public profile: (from: string, to: string) => LinkProfile,
    readonly packetsPerLinkMax = 4096
  ) {
    this.#clock = scheduler.clock()
  }

  /** Plugs an endpoint in; packets to it arrive on its clock (none once that clock halts). */
  attach (address: string, clock: SimClock, deliver: Deliver<P>): () => void {
    const endpoint = { deliver, clock }
    this.#endpoints.set(address, endpoint)
    return () => { if (this.#endpoints.get(address) === endpoint) this.#endpoints.delete(address) }
  }

  /** Attached endpoints, in address order. */
  addresses (): string[] {
    return [...this.#endpoints.keys()].sort()
  }

  isAttached (address: string): boolean {
    return this.#endpoints.has(address)
  }

  send (from: string, to: string, packet: P): void {
    this.stats.sent++
    const profile = this.profile(from, to)
    const copies = this.prng.chance(profile.duplicatePerMille, 1000) ? 2 : 1
    if (copies === 2) this.stats.duplicated++
    const key = link(from, to)
    for (let c = 0; c < copies; c++) {
      const endpoint = this.#endpoints.get(to)
      const inflight = this.#inflight.get(key) ?? 0
      if (endpoint === undefined || this.#blocked.has(key) || inflight >= this.packetsPerLinkMax || this.prng.chance(profile.dropPerMille, 1000)) {
        this.stats.dropped++
        continue
      }
      this.#inflight.set(key, inflight + 1)
      const delayMs = this.prng.intInclusive(profile.latencyMs[0], profile.latencyMs[1])
      this.scheduler.at(this.scheduler.nowMs + delayMs, this.#clock, () => {
        this.#inflight.set(key, (this.#inflight.get(key) ?? 1) - 1)
        if (this.#blocked.has(key) || this.#endpoints.get(to) !== endpoint || endpoint.clock.halted) {
          this.stats.dropped++
          return
        }
        this.stats.delivered++
        endpoint.deliver(from, packet)
      })
    }
  }

  /** Blocks from→to (one way); call twice for a symmetric cut. */
  block (from: string, to: string): void {
    this.#blocked.add(link(from, to))
  }

  isBlocked (from: string, to: string): boolean {
    return this.#blocked.has(link(from, to))
  }

  /** Splits addresses into two sides; symmetric, or only side A → side B when oneWay. */
  partition (sideA: readonly string[], sideB: readonly string[], oneWay: boolean): void {
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
}

function link (from: string, to: string): string {
  return `${from}>${to}`
}

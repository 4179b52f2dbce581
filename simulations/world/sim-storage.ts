import type { BatchOp, Storage } from '../../base/storage.js'
import { MemoryStorage } from '../../base/memory-storage.js'
import type { Prng } from './prng.js'
import type { SimClock } from './scheduler.js'

// A node's simulated disk behind the Storage seam: a batch is durable (and its promise resolves)
// only after a write latency drawn from the seed, batches complete in the order they were issued
// (a write-ahead log), and reads see completed batches only. crash() is kill -9 with a torn tail:
// of the batches still in flight, a random prefix reached the platter (written, never
// acknowledged) and the rest is lost — never a batch in part, as LevelDB's log checksums drop a
// torn record whole. What was acknowledged always survives.

export class SimStorage implements Storage {
  readonly #durable: MemoryStorage
  readonly #clock: SimClock
  readonly #prng: Prng
  readonly #latencyMs: readonly [number, number]
  readonly #inflight: Array<ReadonlyArray<BatchOp>> = []
  #lastDoneMs = 0

  constructor (clock: SimClock, prng: Prng, latencyMs: readonly [number, number], durable = new MemoryStorage()) {
    this.#clock = clock
    this.#prng = prng
    this.#latencyMs = latencyMs
    this.#durable = durable
  }

  async get (key: string): Promise<Uint8Array | undefined> {
    return await this.#durable.get(key)
  }

  async batch (ops: ReadonlyArray<BatchOp>): Promise<void> {
    const copy = ops.map((op) => op.type === 'put' ? { ...op, value: Uint8Array.from(op.value) } : op)
    this.#inflight.push(copy)
    const doneMs = Math.max(this.#lastDoneMs, this.#clock.monotonicMs() + this.#prng.intInclusive(this.#latencyMs[0], this.#latencyMs[1]))
    this.#lastDoneMs = doneMs
    await this.#clock.sleep(doneMs - this.#clock.monotonicMs())
    if (this.#inflight[0] !== copy) throw new Error('simulated disk: batches complete in order')
    this.#inflight.shift()
    await this.#durable.batch(copy)
  }

  iterate (prefix: string, options?: { limit?: number, reverse?: boolean, gt?: string }): AsyncIterable<[string, Uint8Array]> {
    return this.#durable.iterate(prefix, options)
  }

  async close (): Promise<void> {}

  get inflight (): number {
    return this.#inflight.length
  }

  /** kill -9 and restart: the disk as it is now, for a new process on a new clock. */
  crash (clock: SimClock): { storage: SimStorage, torn: number, lost: number } {
    const written = this.#prng.intInclusive(0, this.#inflight.length)
    const survivor = this.#durable.crash()
    const tail = this.#inflight.splice(0)
    for (const ops of tail.slice(0, written)) void survivor.batch(ops)
    return { storage: new SimStorage(clock, this.#prng, this.#latencyMs, survivor), torn: written, lost: tail.length - written }
  }
}

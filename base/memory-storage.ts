import type { BatchOp, Storage } from './storage.js'

// In-memory Storage for tests and the simulator. A batch is durable once its promise resolves, as
// with LevelStorage; crash() models kill -9: everything acknowledged survives, nothing else does.
export class MemoryStorage implements Storage {
  readonly #data = new Map<string, Uint8Array>()
  #closed = false

  async get (key: string): Promise<Uint8Array | undefined> {
    this.#assertOpen()
    const value = this.#data.get(key)
    return value === undefined ? undefined : Uint8Array.from(value)
  }

  async batch (ops: ReadonlyArray<BatchOp>): Promise<void> {
    this.#assertOpen()
    // Copy every value before applying any op, so a bad op fails the whole batch (atomicity).
    const copies = ops.map((op) => op.type === 'put' ? Uint8Array.from(op.value) : undefined)
    ops.forEach((op, i) => {
      const copy = copies[i]
      if (copy !== undefined) this.#data.set(op.key, copy)
      else this.#data.delete(op.key)
    })
  }

  async * iterate (prefix: string, options: { limit?: number, reverse?: boolean, gt?: string } = {}): AsyncIterable<[string, Uint8Array]> {
    this.#assertOpen()
    const keys = [...this.#data.keys()]
      .filter((k) => k.startsWith(prefix) && (options.gt === undefined || k > options.gt))
      .sort()
    if (options.reverse === true) keys.reverse()
    const limit = options.limit ?? Infinity
    for (let i = 0; i < keys.length && i < limit; i++) {
      const key = keys[i]!
      const value = this.#data.get(key)
      if (value !== undefined) yield [key, Uint8Array.from(value)]
    }
  }

  async close (): Promise<void> {
    this.#closed = true
  }

  /** Simulates a crash and restart: a new handle over what was durably written. */
  crash (): MemoryStorage {
    this.#closed = true
    const restarted = new MemoryStorage()
    for (const [k, v] of this.#data) restarted.#data.set(k, v)
    return restarted
  }

  #assertOpen (): void {
    if (this.#closed) throw new Error('storage is closed')
  }
}

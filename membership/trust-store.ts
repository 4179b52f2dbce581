import assert from 'node:assert/strict'
import type { Storage, BatchOp } from '../base/storage.js'
import { silentLogger, type Logger } from '../base/log.js'
import {
  TrustBook, gossipsubAppScore, type QuarantineCrossing, type TrustEventType, type TrustOptions, type TrustRecordResult
} from './trust.js'

// Persists a TrustBook through Storage, one key per peer (`trust/<peer>`, JSON). Write-behind:
// record() only marks the peer dirty; flush() writes every dirty peer in one atomic batch (the
// shell calls it on a timer and on stop). Reaching dirtyPeersMax starts a flush by itself, so the
// dirty set stays bounded while storage works. A crash loses at most the unflushed updates, which
// is acceptable for a reputation signal; load() rebuilds the book and deletes corrupt records.

export const TRUST_KEY_PREFIX = 'trust/'
const RECORD_BYTES_MAX = 16 * 1024

export interface TrustStoreInit {
  storage: Storage
  logger?: Logger
  trust?: Partial<TrustOptions>
  /** Dirty peers that trigger a flush on their own (default 256). */
  dirtyPeersMax?: number
}

export class TrustStore {
  readonly book: TrustBook
  readonly #storage: Storage
  readonly #logger: Logger
  readonly #dirtyPeersMax: number
  readonly #dirty = new Set<string>()
  #tail: Promise<unknown> = Promise.resolve()
  #autoFlushPending = false

  private constructor (init: TrustStoreInit, book: TrustBook) {
    this.book = book
    this.#storage = init.storage
    this.#logger = init.logger ?? silentLogger
    this.#dirtyPeersMax = init.dirtyPeersMax ?? 256
    assert.ok(Number.isSafeInteger(this.#dirtyPeersMax), 'dirtyPeersMax must be an integer')
    assert.ok(this.#dirtyPeersMax > 0, 'dirtyPeersMax must be positive')
  }

  /** Loads every `trust/` record; corrupt ones are logged and deleted on the next flush. */
  static async load (init: TrustStoreInit): Promise<TrustStore> {
    const store = new TrustStore(init, new TrustBook(init.trust))
    const decoder = new TextDecoder('utf-8', { fatal: true })
    for await (const [key, value] of init.storage.iterate(TRUST_KEY_PREFIX)) {
      const peer = key.slice(TRUST_KEY_PREFIX.length)
      try {
        if (value.byteLength > RECORD_BYTES_MAX) throw new Error(`record is ${value.byteLength} bytes`)
        const evicted = store.book.restorePeer(peer, JSON.parse(decoder.decode(value)))
        if (evicted !== undefined) store.#dirty.add(evicted)
      } catch (err) {
        store.#logger.warn({ key, err: (err as Error).message }, 'dropping corrupt trust record')
        store.#dirty.add(peer)
      }
    }
    return store
  }

  get dirtyCount (): number {
    return this.#dirty.size
  }

  record (peer: string, type: TrustEventType, nowMs: number): TrustRecordResult {
    const result = this.book.record(peer, type, nowMs)
    this.#markDirty(peer)
    if (result.evicted !== undefined) this.#markDirty(result.evicted)
    return result
  }

  /** TrustBook.crossings(), remembering the newly reported state. */
  crossings (nowMs: number): Array<{ peer: string, crossed: QuarantineCrossing, score: number }> {
    const crossings = this.book.crossings(nowMs)
    for (const { peer } of crossings) this.#markDirty(peer)
    return crossings
  }

  /**
   * gossipsub's scoreParams.appSpecificScore for a peer's key (hex; see gossipsubAppScore). The
   * libp2p transport maps gossipsub's peer id strings to keys.
   */
  appSpecificScore (key: string, nowMs: number): number {
    return gossipsubAppScore(this.book.score(key, nowMs), this.book.options)
  }

  /** Writes all dirty peers in one batch; resolves to the number of keys written or deleted. */
  async flush (): Promise<number> {
    const run = this.#tail.then(async () => await this.#flushOnce())
    this.#tail = run.catch(() => undefined)
    return await run
  }

  async #flushOnce (): Promise<number> {
    if (this.#dirty.size === 0) return 0
    const peers = [...this.#dirty]
    this.#dirty.clear()
    const encoder = new TextEncoder()
    const ops: BatchOp[] = peers.map((peer) => {
      const key = TRUST_KEY_PREFIX + peer
      const record = this.book.serializePeer(peer)
      if (record === undefined) return { type: 'del', key }
      return { type: 'put', key, value: encoder.encode(JSON.stringify(record)) }
    })
    try {
      await this.#storage.batch(ops)
    } catch (err) {
      for (const peer of peers) this.#dirty.add(peer)
      throw err
    }
    return ops.length
  }

  #markDirty (peer: string): void {
    this.#dirty.add(peer)
    if (this.#dirty.size < this.#dirtyPeersMax || this.#autoFlushPending) return
    this.#autoFlushPending = true
    this.flush()
      .catch((err: unknown) => this.#logger.warn({ err: (err as Error).message }, 'trust flush failed'))
      .finally(() => { this.#autoFlushPending = false })
  }
}

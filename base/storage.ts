// Durable key-value storage behind one small interface. LevelStorage (level, synced batches) backs
// the node; MemoryStorage backs tests and the simulator, with crash semantics. Keys are strings and
// iterate in byte order, so fixed-width numeric suffixes sort numerically.

export type BatchOp =
  | { type: 'put', key: string, value: Uint8Array }
  | { type: 'del', key: string }

export interface Storage {
  get(key: string): Promise<Uint8Array | undefined>
  /** Applies all ops atomically and durably (synced) before resolving. */
  batch(ops: ReadonlyArray<BatchOp>): Promise<void>
  /** Entries whose key starts with prefix, in key order. */
  iterate(prefix: string, options?: { limit?: number, reverse?: boolean, gt?: string }): AsyncIterable<[string, Uint8Array]>
  close(): Promise<void>
}

// Time and randomness enter fedmesh only through these two interfaces. The node injects the system
// implementations (system-clock.ts); the simulator injects seeded, simulated ones.

export interface Clock {
  /** Milliseconds on a monotonic clock; only differences are meaningful. */
  monotonicMs(): number
  /** Wall-clock milliseconds since the Unix epoch (timestamps on the wire, audit entries). */
  wallMs(): number
  /** Calls fn every intervalMs until the returned function is called. */
  every(intervalMs: number, fn: () => void): () => void
  /** Resolves after delayMs. */
  sleep(delayMs: number): Promise<void>
  /**
   * Resolves after the work already queued has run (the event loop's current I/O phase in the
   * node; the simulator's current step): the one way a driver defers, so that everything that
   * arrived meanwhile is batched into its next round.
   */
  yield(): Promise<void>
}

export interface Rng {
  /** Uniform 32-bit unsigned integer. */
  nextU32(): number
  /** Fills a fresh array with random bytes (nonces, salts). */
  bytes(length: number): Uint8Array
}

import type { Clock } from '../../base/clock.js'

// Simulated time for a whole simulated world (TigerBeetle's time simulator, event-driven): one
// timeline of timers in (due ms, insertion order); each node sees it through its own SimClock,
// whose wall clock may be skewed and which a crash halts (its timers never fire again, its sleeps
// and yields never resolve, so the dead node's promise chains simply stop). The drivers under test
// run unchanged on these clocks: every() and sleep() are timers, yield() resolves in the settle
// pass after the current instant, once everything its timers started has run.
//
// Determinism: nothing in the world does real I/O, so the only asynchrony is promise jobs. settle()
// drains them with one real macrotask turn (setImmediate: all queued microtasks run before it), the
// one place the simulator touches the event loop; the order of promise jobs is fixed by the order
// of events, so a seed replays exactly. The timers due at one instant all fire before it settles:
// they are simultaneous, and a macrotask turn per instant rather than per timer saves a tenth of a
// Raft seed. A clock halted by one of them wakes none of its sleepers of that instant.

interface Timer { atMs: number, seq: number, clock: SimClock, fn: () => void }

/** Rounds of yields in one settle pass before the world is declared stuck (a driver spinning on yield()). */
const SETTLE_ROUNDS_MAX = 10_000
export const SIM_EPOCH_MS = Date.UTC(2026, 0, 1)

export class SimScheduler {
  nowMs = 0
  readonly #timers: Timer[] = []
  #yields: Array<() => void> = []
  #seq = 0

  /** A node's view of time; wall time is SIM_EPOCH_MS + now + skewMs. */
  clock (skewMs = 0): SimClock {
    return new SimClock(this, skewMs)
  }

  /** Runs fn at atMs (at once-ish if in the past) unless its clock halts first. */
  at (atMs: number, clock: SimClock, fn: () => void): void {
    heapPush(this.#timers, { atMs: Math.max(atMs, this.nowMs), seq: this.#seq++, clock, fn })
  }

  /** Resolves in the next settle round (used by SimClock.yield). */
  deferred (resolve: () => void): void {
    this.#yields.push(resolve)
  }

  get nextAtMs (): number | undefined {
    return this.#timers[0]?.atMs
  }

  /** Fires every timer due by untilMs, in order, settling after each instant; then time stands at untilMs. */
  async runUntil (untilMs: number): Promise<void> {
    await this.settle()
    for (;;) {
      const next = this.#timers[0]
      if (next === undefined || next.atMs > untilMs) break
      this.nowMs = next.atMs
      while (this.#timers[0]?.atMs === this.nowMs) {
        const timer = heapPop(this.#timers)!
        if (!timer.clock.halted) timer.fn()
      }
      await this.settle()
    }
    this.nowMs = Math.max(this.nowMs, untilMs)
  }

  /** Runs every promise job and yield the last event set off, until the world is quiet. */
  async settle (): Promise<void> {
    for (let round = 0; ; round++) {
      await new Promise<void>((resolve) => setImmediate(resolve))
      if (this.#yields.length === 0) return
      if (round >= SETTLE_ROUNDS_MAX) throw new Error(`the world does not settle: ${this.#yields.length} yields after ${round} rounds at ${this.nowMs} ms`)
      const due = this.#yields
      this.#yields = []
      for (const resolve of due) resolve()
    }
  }
}

export class SimClock implements Clock {
  halted = false

  constructor (readonly scheduler: SimScheduler, public skewMs: number) {}

  monotonicMs (): number { return this.scheduler.nowMs }
  wallMs (): number { return SIM_EPOCH_MS + this.scheduler.nowMs + this.skewMs }

  every (intervalMs: number, fn: () => void): () => void {
    let stopped = false
    const arm = (): void => {
      this.scheduler.at(this.scheduler.nowMs + intervalMs, this, () => {
        if (stopped) return
        arm()
        fn()
      })
    }
    arm()
    return () => { stopped = true }
  }

  async sleep (delayMs: number): Promise<void> {
    await new Promise<void>((resolve) => { this.scheduler.at(this.scheduler.nowMs + delayMs, this, resolve) })
    // Halted by another timer of the same instant: the process died before it woke.
    if (this.halted) await new Promise<never>(() => {})
  }

  async yield (): Promise<void> {
    await new Promise<void>((resolve) => { if (!this.halted) this.scheduler.deferred(() => { if (!this.halted) resolve() }) })
  }

  /** kill -9: nothing scheduled on this clock runs again. */
  halt (): void {
    this.halted = true
  }
}

function before (a: Timer, b: Timer): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq)
}

function heapPush (heap: Timer[], t: Timer): void {
  heap.push(t)
  let i = heap.length - 1
  while (i > 0) {
    const parent = (i - 1) >> 1
    if (!before(heap[i]!, heap[parent]!)) break
    ;[heap[i], heap[parent]] = [heap[parent]!, heap[i]!]
    i = parent
  }
}

function heapPop (heap: Timer[]): Timer | undefined {
  const top = heap[0]
  const last = heap.pop()
  if (heap.length > 0 && last !== undefined) {
    heap[0] = last
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let m = i
      if (l < heap.length && before(heap[l]!, heap[m]!)) m = l
      if (r < heap.length && before(heap[r]!, heap[m]!)) m = r
      if (m === i) break
      ;[heap[i], heap[m]] = [heap[m]!, heap[i]!]
      i = m
    }
  }
  return top
}

import { randomBytes, randomInt } from 'node:crypto'
import type { Clock, Rng } from '../../base/clock.js'

// The only place the node reads real time or real randomness (a test greps the cores to keep it so).
export const systemClock: Clock = {
  monotonicMs: () => performance.now(),
  wallMs: () => Date.now(),
  every (intervalMs, fn) {
    const timer = setInterval(fn, intervalMs)
    timer.unref()
    return () => clearInterval(timer)
  },
  sleep: async (delayMs) => await new Promise((resolve) => setTimeout(resolve, delayMs)),
  yield: async () => await new Promise((resolve) => setImmediate(resolve))
}

export const cryptoRng: Rng = {
  nextU32: () => randomInt(0, 2 ** 32 - 1) >>> 0,
  bytes: (length) => new Uint8Array(randomBytes(length))
}

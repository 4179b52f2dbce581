import type { Clock } from '../../base/clock.js'
import type { Logger } from '../../base/log.js'
import type { AuditInput } from './audit.js'

// Rejected input from strangers (forged or replayed envelopes, bad join tokens) and refused requests
// from quarantined or revoked peers must not buy a signed, synced audit entry each: that would let
// anyone grow the log and spend our CPU. Per window, the first rejection per (action, peer, reason)
// is audited in full; the rest are counted, and when the window ends one 'audit.repeated' entry per
// key records how many there were. Keys are bounded per window: past keysMax, rejections are only
// counted under one overflow key. So a window costs at most 2 × keysMax + 1 entries, whatever comes in.
export const REJECTION_WINDOW_MS_DEFAULT = 60_000
export const REJECTION_KEYS_MAX_DEFAULT = 256
const OVERFLOW_KEY = 'overflow'

export interface RejectionAuditInit {
  audit: (input: AuditInput) => Promise<unknown>
  clock: Clock
  logger: Logger
  windowMs?: number
  keysMax?: number
}

interface Repeats { input: AuditInput, reason: string, count: number }

export class RejectionAudit {
  readonly windowMs: number
  readonly #init: RejectionAuditInit
  readonly #keysMax: number
  #window = new Map<string, Repeats>()
  #stopTimer?: () => void

  constructor (init: RejectionAuditInit) {
    this.#init = init
    this.windowMs = init.windowMs ?? REJECTION_WINDOW_MS_DEFAULT
    this.#keysMax = init.keysMax ?? REJECTION_KEYS_MAX_DEFAULT
  }

  start (): void {
    this.#stopTimer = this.#init.clock.every(this.windowMs, () => { void this.flush() })
  }

  /** Stops the window timer and writes the counts of the current window (before the log closes). */
  async stop (): Promise<void> {
    this.#stopTimer?.()
    this.#stopTimer = undefined
    await this.flush()
  }

  /** Audits a rejection if it is the first of its kind (action, peer, reason) in this window; counts it otherwise. */
  async record (input: AuditInput, reason: string): Promise<void> {
    const key = `${input.action}\u0000${input.peer ?? ''}\u0000${reason}`
    const seen = this.#window.get(key)
    if (seen !== undefined) {
      seen.count++
      return
    }
    if (this.#window.size >= this.#keysMax) {
      const overflow = this.#window.get(OVERFLOW_KEY)
      if (overflow !== undefined) overflow.count++
      else this.#window.set(OVERFLOW_KEY, { input: { action: 'audit.overflow', decision: 'deny' }, reason: 'distinct-keys', count: 1 })
      return
    }
    this.#window.set(key, { input, reason, count: 0 })
    await this.#init.audit(input)
  }

  /** Ends the window: one entry per key that repeated (or overflowed), then a fresh window. */
  async flush (): Promise<void> {
    const ended = this.#window
    this.#window = new Map()
    const windowMs = String(this.windowMs)
    await Promise.all([...ended.values()].filter((r) => r.count > 0).map(async ({ input, reason, count }) => {
      const summary: AuditInput = {
        action: 'audit.repeated', decision: input.decision,
        ...(input.peer !== undefined ? { peer: input.peer } : {}),
        detail: { action: input.action, reason, count: String(count), windowMs }
      }
      await this.#init.audit(summary).catch((err) => this.#init.logger.warn({ err: (err as Error).message }, 'cannot audit repeated rejections'))
    }))
  }
}

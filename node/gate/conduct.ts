import type { Clock } from '../../base/clock.js'
import type { Logger } from '../../base/log.js'
import type { Verdict } from '../../base/transport.js'
import type { QuarantineCrossing, TrustEventType } from '../../membership/trust.js'
import type { TrustStore } from '../../membership/trust-store.js'
import type { AuditInput } from './audit.js'

// Conduct → trust: what peers do (their announcements, capability requests, federation evidence)
// becomes trust events; a peer's score crossing the quarantine threshold is logged, reported and
// audited. Once a heartbeat it reports the crossings drift alone caused and persists the scores.

// Which announcement outcomes say something about the sender's conduct.
const ANNOUNCEMENT_CONDUCT: Record<string, TrustEventType> = {
  'bad-signature': 'invalid-signature',
  'sender-mismatch': 'invalid-signature',
  malformed: 'malformed',
  oversize: 'malformed',
  'cert-bad-signature': 'invalid-signature',
  'cert-mismatch': 'invalid-signature',
  'cert-malformed': 'malformed'
}

export interface TrustCrossing { peer: string, crossed: QuarantineCrossing, score: number }

export interface ConductReporterInit {
  trust: TrustStore
  clock: Clock
  logger: Logger
  audit: (input: AuditInput) => Promise<unknown>
  heartbeatMs: number
  onCrossing: (crossing: TrustCrossing) => void
}

export class ConductReporter {
  readonly #init: ConductReporterInit
  #stopTimer?: () => void

  constructor (init: ConductReporterInit) {
    this.#init = init
  }

  start (): void {
    this.#stopTimer = this.#init.clock.every(this.#init.heartbeatMs, () => this.#housekeeping())
  }

  stop (): void {
    this.#stopTimer?.()
    this.#stopTimer = undefined
  }

  record (peer: string, event: TrustEventType): void {
    const result = this.#init.trust.record(peer, event, this.#init.clock.wallMs())
    if (result.crossed !== undefined) this.#report({ peer, crossed: result.crossed, score: result.score })
  }

  /** An announcement's outcome (membership's 'received'): a valid one counts for its sender, a forged or malformed one against. */
  announcement (peer: string, verdict: Verdict, reason: string | undefined): void {
    const event = verdict === 'reject' ? ANNOUNCEMENT_CONDUCT[reason ?? 'malformed'] : verdict === 'accept' || reason === 'quarantined' ? 'valid-message' : undefined
    if (event !== undefined) this.record(peer, event)
  }

  #report (crossing: TrustCrossing): void {
    const { peer, crossed, score } = crossing
    this.#init.logger.warn({ peer, crossed, score }, 'peer trust crossed the quarantine threshold')
    this.#init.onCrossing(crossing)
    void this.#init.audit({ action: 'trust.threshold', decision: 'info', peer, detail: { crossed, score: score.toFixed(4) } }).catch(() => undefined)
  }

  #housekeeping (): void {
    const { trust, clock, logger } = this.#init
    for (const { peer, crossed, score } of trust.crossings(clock.wallMs())) this.#report({ peer, crossed, score })
    trust.flush().catch((err) => logger.error({ err: (err as Error).message }, 'trust flush failed'))
  }
}

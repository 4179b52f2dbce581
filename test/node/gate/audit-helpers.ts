import type { Clock } from '../../../base/clock.js'
import type { AuditInput } from '../../../node/gate/audit.js'

// Shared fixtures for the audit suites.
export function manualClock (startMs = 1_700_000_000_000): Clock & { advance(ms: number): void } {
  let nowMs = startMs
  return {
    monotonicMs: () => nowMs,
    wallMs: () => nowMs,
    every: () => () => {},
    sleep: async () => {},
    yield: async () => {},
    advance (ms: number) { nowMs += ms }
  }
}

export const PEER_HEX = 'ab'.repeat(32)

export function sampleInput (i: number): AuditInput {
  return {
    action: i % 2 === 0 ? 'envelope.in' : 'policy.decision',
    decision: i % 3 === 0 ? 'reject' : 'accept',
    peer: PEER_HEX,
    org: 'org-b',
    content: new TextEncoder().encode(`sanitized payload ${i}`),
    detail: { rule: `rule-${i % 5}`, reason: 'sample' }
  }
}

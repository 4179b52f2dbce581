import type { Sanitizer } from '../../sanitize/index.js'
import { SanitizeBlockedError } from '../../sanitize/index.js'
import type { TrustEventType } from '../../membership/trust.js'
import type { AuditInput } from './audit.js'
import type { NodeComponents } from '../../base/components.js'
import { decodeCanonical, encodeCanonical } from '../../base/codec.js'
import { EnvelopeError, openEnvelope, ReplayGuard, sealEnvelope } from '../../base/envelope.js'
import { FedmeshError } from '../../base/errors.js'
import { fromHex, toHex } from '../../base/bytes.js'
import type { PolicyContext, PolicyDecision, PolicyRequest } from './policy.js'
import { RevocationError } from './revocation.js'

// Capability requests between peers: the trust boundary in action. Outbound payloads for another
// organisation are sanitized before they are sealed; inbound requests are verified, gated by trust
// and decided by the default-deny policy; every step is audited (digests, never content).
// Wire: rpc channel 'capability/v1'; request envelope 'capability.request' with body
// CBOR { cap, json } and reply envelope 'capability.response' with body CBOR { json }.
export const CAPABILITY_CHANNEL = 'capability/v1'
const REQUEST_TYPE = 'capability.request'
const RESPONSE_TYPE = 'capability.response'
export const CAPABILITY_BYTES_MAX = 256 * 1024
const NONCE_BYTES = 16

export interface CapabilityCall { peer: string, org: string, payload: unknown }
export type CapabilityHandler = (call: CapabilityCall) => Promise<unknown>

export interface CapabilityServiceInit extends NodeComponents {
  sanitizer: Sanitizer
  decide: (request: PolicyRequest, context: PolicyContext) => PolicyDecision
  trustOf: (peer: string) => { score: number, quarantined: boolean }
  /** Reports a peer's conduct to the trust model. */
  conduct: (peer: string, event: TrustEventType) => void
  /** Durable audit; resolves once the entry is synced. */
  audit: (input: AuditInput) => Promise<unknown>
  /** Audit of a rejection that strangers can repeat at will (bounded per window: gate/rejection-audit.ts). */
  auditRejection: (input: AuditInput, reason: string) => Promise<unknown>
  /** The organisation a member announced, if known. */
  orgOf: (peer: string) => string | undefined
  /** Refusal check: true if peer belongs to an organisation the federation revoked (the node counts it). */
  isRevoked: (peer: string) => boolean
}

const REVOKED_DECISION: PolicyDecision = { decision: 'deny', rule: 'org-revoked', reason: 'the peer\'s organisation was revoked by the federation' }

const REJECTION_CONDUCT: Record<string, TrustEventType> = {
  'bad-signature': 'invalid-signature',
  'sender-mismatch': 'invalid-signature',
  replay: 'replay',
  stale: 'replay',
  oversize: 'malformed',
  malformed: 'malformed'
}

export class CapabilityService {
  readonly #handlers = new Map<string, CapabilityHandler>()
  readonly #replayGuard = new ReplayGuard()

  constructor (readonly init: CapabilityServiceInit) {
    init.transport.onRequest(CAPABILITY_CHANNEL, async (from, bytes) => await this.#serve(toHex(from), bytes))
  }

  expose (capability: string, handler: CapabilityHandler): void {
    this.#handlers.set(capability, handler)
  }

  capabilities (): string[] {
    return [...this.#handlers.keys()].sort()
  }

  /** Asks peer to run capability; the payload is sanitized first when it leaves our organisation. */
  async request (peer: string, capability: string, payload: unknown, options: { timeoutMs?: number } = {}): Promise<unknown> {
    const { init } = this
    if (init.isRevoked(peer)) throw new RevocationError('org-revoked', `${capability}: ${REVOKED_DECISION.reason}`)
    const targetOrg = init.orgOf(peer) ?? ''
    const outbound = await this.#outbound(peer, targetOrg, payload, { action: 'capability.request', detail: { capability } })
    const bytes = this.#seal(REQUEST_TYPE, encodeCanonical({ cap: capability, json: outbound }))
    let reply: Uint8Array
    try {
      reply = await init.transport.request(fromHex(peer), CAPABILITY_CHANNEL, bytes, options)
    } catch (err) {
      if (err instanceof FedmeshError && err.code === 'rpc-timeout') init.conduct(peer, 'timeout')
      throw err
    }
    const envelope = this.#open(peer, reply, RESPONSE_TYPE)
    let result: unknown
    const json = field(decodeCanonical(envelope.body), 'json')
    try {
      result = parseJson(json)
    } catch (err) {
      init.conduct(peer, 'malformed')
      throw err
    }
    init.conduct(peer, 'completed-work')
    await init.audit({ action: 'capability.response', decision: 'accept', peer, org: envelope.org, content: new TextEncoder().encode(json), detail: { capability } })
    return result
  }

  async #serve (peer: string, bytes: Uint8Array): Promise<Uint8Array> {
    const { init } = this
    let envelope, capability, json, payload
    try {
      envelope = this.#open(peer, bytes, REQUEST_TYPE)
      const body = decodeCanonical(envelope.body)
      capability = field(body, 'cap')
      json = field(body, 'json')
      payload = parseJson(json)
    } catch (err) {
      if (envelope !== undefined) init.conduct(peer, 'malformed')
      const reason = err instanceof FedmeshError ? err.code : 'malformed'
      await init.auditRejection({ action: 'capability.request', decision: 'reject', peer, detail: { reason } }, reason)
      throw err
    }
    const content = new TextEncoder().encode(json)
    const revoked = init.isRevoked(peer)
    const trust = init.trustOf(peer)
    const decision: PolicyDecision = revoked
      ? REVOKED_DECISION
      : trust.quarantined
        ? { decision: 'deny', rule: 'quarantine', reason: `peer trust ${trust.score.toFixed(3)} is below the quarantine threshold` }
        : init.decide({ peer, org: envelope.org, capability, payload, payloadBytes: content.length }, { nowMs: init.clock.wallMs(), trust: trust.score })
    const audited: AuditInput = { action: 'policy.decision', decision: decision.decision, peer, org: envelope.org, content, detail: { capability, rule: decision.rule, reason: decision.reason.slice(0, 256) } }
    // A quarantined or revoked peer's requests are refused before any policy runs: bounded audit.
    await (revoked || trust.quarantined ? init.auditRejection(audited, decision.rule) : init.audit(audited))
    if (decision.decision === 'deny') {
      if (revoked) throw new RevocationError('org-revoked', `${capability}: ${decision.reason}`)
      if (!trust.quarantined) init.conduct(peer, decision.cause === 'rate-limit' ? 'rate-limit' : 'policy-violation')
      throw new FedmeshError('denied', `${capability}: ${decision.reason} (${decision.rule})`)
    }
    init.conduct(peer, 'valid-message')
    const handler = this.#handlers.get(capability)
    if (handler === undefined) throw new FedmeshError('no-capability', `this node does not serve '${capability}'`)
    const result = await handler({ peer, org: envelope.org, payload })
    const outbound = await this.#outbound(peer, envelope.org, result ?? null, { action: 'capability.response', detail: { capability } })
    return this.#seal(RESPONSE_TYPE, encodeCanonical({ json: outbound }))
  }

  /** JSON text of value, sanitized when it is bound for another organisation, and audited. */
  async #outbound (peer: string, targetOrg: string, value: unknown, audit: { action: string, detail: Record<string, string> }): Promise<string> {
    const { init } = this
    const crossOrg = targetOrg !== init.org
    let clean = value
    const detail: Record<string, string> = { ...audit.detail, crossOrg: String(crossOrg) }
    if (crossOrg) {
      try {
        const result = init.sanitizer.sanitize(value)
        clean = result.value
        for (const [category, count] of Object.entries(result.report.redactions)) detail[`redacted.${category}`] = String(count)
      } catch (err) {
        if (err instanceof SanitizeBlockedError) {
          await init.audit({ action: audit.action, decision: 'deny', peer, org: targetOrg, detail: { ...detail, reason: err.message.slice(0, 256) } })
        }
        throw err
      }
    }
    const json = JSON.stringify(clean) ?? 'null'
    if (json.length > CAPABILITY_BYTES_MAX) throw new FedmeshError('oversize', `payload of ${json.length} bytes exceeds ${CAPABILITY_BYTES_MAX}`)
    await init.audit({ action: audit.action, decision: 'allow', peer, org: targetOrg, content: new TextEncoder().encode(json), detail })
    return json
  }

  #seal (type: string, body: Uint8Array): Uint8Array {
    const { init } = this
    return sealEnvelope(init.signer, { type, org: init.org, body, timestampMs: init.clock.wallMs(), nonce: init.rng.bytes(NONCE_BYTES) })
  }

  #open (peer: string, bytes: Uint8Array, type: string): ReturnType<typeof openEnvelope> {
    const { init } = this
    try {
      const envelope = openEnvelope(bytes, { nowMs: init.clock.wallMs(), expectedSender: fromHex(peer), replayGuard: this.#replayGuard, bytesMax: CAPABILITY_BYTES_MAX + 4096 })
      if (envelope.type !== type) throw new EnvelopeError('malformed', `expected ${type}, got ${envelope.type}`)
      return envelope
    } catch (err) {
      const reason = err instanceof FedmeshError ? err.code : 'malformed'
      init.conduct(peer, REJECTION_CONDUCT[reason] ?? 'malformed')
      init.logger.warn({ peer, reason, err: (err as Error).message }, 'capability envelope rejected')
      throw err
    }
  }
}

function field (body: unknown, name: string): string {
  const value = typeof body === 'object' && body !== null ? (body as Record<string, unknown>)[name] : undefined
  if (typeof value !== 'string') throw new FedmeshError('malformed', `capability body needs a string '${name}'`)
  return value
}

function parseJson (json: string): unknown {
  try {
    return JSON.parse(json)
  } catch (err) {
    throw new FedmeshError('malformed', `capability payload is not JSON: ${(err as Error).message}`)
  }
}

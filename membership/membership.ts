import { EventEmitter } from 'node:events'
import type { NodeComponents } from '../base/components.js'
import { EnvelopeError, openEnvelope, ReplayGuard, sealEnvelope } from '../base/envelope.js'
import { FedmeshError } from '../base/errors.js'
import { toHex } from '../base/bytes.js'
import { verifyCertificate } from '../base/org-certificate.js'
import type { Verdict } from '../base/transport.js'
import { ANNOUNCE_TYPE, LEAVE_TYPE, decodeAnnouncementBody, encodeAnnouncementBody, type Announcement } from './announcement.js'
import { MembershipCore, type Member, type MemberChange, type MembershipConfig } from './membership-core.js'

// The membership shell: signs and gossips this node's heartbeats, verifies everyone else's, feeds
// the pure MembershipCore and reports changes as events. All time comes from the injected Clock.
export const MEMBERSHIP_TOPIC = 'fedmesh/membership/v1'
const NONCE_BYTES = 16
const ANNOUNCEMENT_BYTES_MAX = 16 * 1024
const LEAVE_FLUSH_MS = 200

export interface MembershipInit extends Partial<MembershipConfig>, NodeComponents {
  /** Grows on every restart (persisted by the node), so a restarted node outranks its old self. */
  incarnation: number
  addrs: () => string[]
  capabilities?: () => string[]
  /** This node's certificate (node/org.ts), carried in every announcement. */
  certificate: Uint8Array
  heartbeatMs?: number
  /** Dial announced addresses until this many peers are connected, so the mesh outlives its bootstrap. */
  peersTarget?: number
  /** Refuses announcements from senders the node no longer trusts (trust gating); default accepts all. */
  admits?: (keyHex: string) => boolean
}

export interface MembershipEvents {
  change: [MemberChange]
  /**
   * Every verified-or-rejected inbound announcement, for metrics and trust. Reason 'org-revoked'
   * (verdict 'ignore', so relays that have not applied the revocation yet are not penalised)
   * carries the revoked org root the sender's certificate chains to.
   */
  received: [{ key: string | undefined, verdict: Verdict, reason?: string, latencyMs?: number, root?: string }]
}

export const HEARTBEAT_MS_DEFAULT = 1000

export class Membership extends EventEmitter<MembershipEvents> {
  readonly core: MembershipCore
  readonly heartbeatMs: number
  readonly #init: MembershipInit
  readonly #replayGuard = new ReplayGuard()
  #seq = 0
  #lastAnnounceMs = -Infinity
  #stopTimer?: () => void
  #unsubscribe?: () => void
  readonly #dialing = new Set<string>()

  constructor (init: MembershipInit) {
    super()
    this.#init = init
    this.heartbeatMs = init.heartbeatMs ?? HEARTBEAT_MS_DEFAULT
    this.core = new MembershipCore(toHex(init.signer.publicKey), {
      suspectAfterMs: init.suspectAfterMs ?? 3 * this.heartbeatMs,
      deadAfterMs: init.deadAfterMs ?? 6 * this.heartbeatMs,
      forgetAfterMs: init.forgetAfterMs ?? 300 * this.heartbeatMs,
      membersMax: init.membersMax ?? 1024
    })
  }

  get incarnation (): number {
    return this.#init.incarnation
  }

  start (): void {
    this.#unsubscribe = this.#init.transport.onTopic(MEMBERSHIP_TOPIC, (from, bytes) => this.#receive(from, bytes))
    this.#stopTimer = this.#init.clock.every(this.heartbeatMs, () => {
      this.#detectFailures()
      void this.announce()
    })
    void this.announce()
  }

  /** Publishes a graceful leave, then stops gossiping. */
  async stop (): Promise<void> {
    this.#stopTimer?.()
    this.#stopTimer = undefined
    if (this.#unsubscribe === undefined) return
    await this.#publish(LEAVE_TYPE)
    // Give the leave a moment to leave the socket before the transport shuts down.
    await this.#init.clock.sleep(Math.min(LEAVE_FLUSH_MS, this.heartbeatMs))
    this.#unsubscribe()
    this.#unsubscribe = undefined
  }

  /** Publishes a heartbeat now (also called when a new peer appears, so it learns of us at once). */
  async announce (): Promise<void> {
    await this.#publish(ANNOUNCE_TYPE)
  }

  members (): ReadonlyArray<Readonly<Member>> {
    return this.core.members()
  }

  async #publish (type: string): Promise<void> {
    const { signer, org, clock, rng, transport, logger } = this.#init
    const body = encodeAnnouncementBody({
      incarnation: this.#init.incarnation,
      seq: ++this.#seq,
      addrs: this.#init.addrs().slice(0, 16),
      capabilities: this.#init.capabilities?.() ?? [],
      certificate: this.#init.certificate
    })
    const bytes = sealEnvelope(signer, { type, org, body, timestampMs: clock.wallMs(), nonce: rng.bytes(NONCE_BYTES) })
    this.#lastAnnounceMs = clock.monotonicMs()
    try {
      await transport.publish(MEMBERSHIP_TOPIC, bytes)
    } catch (err) {
      logger.debug({ err: (err as Error).message }, 'announcement not published')
    }
  }

  #receive (from: Uint8Array, bytes: Uint8Array): Verdict {
    const { clock, logger } = this.#init
    const nowMs = clock.wallMs()
    let announcement: Announcement
    let latencyMs: number
    try {
      // `from` may be a relay: the envelope's signature names the member.
      const envelope = openEnvelope(bytes, { nowMs, replayGuard: this.#replayGuard, bytesMax: ANNOUNCEMENT_BYTES_MAX })
      if (envelope.type !== ANNOUNCE_TYPE && envelope.type !== LEAVE_TYPE) throw new FedmeshError('malformed', `unexpected type ${envelope.type} on membership topic`)
      const kind = envelope.type === ANNOUNCE_TYPE ? 'alive' : 'leave'
      const { certificate, ...body } = decodeAnnouncementBody(envelope.body)
      const cert = verifyCertificate(certificate, { nowMs, node: envelope.from, org: envelope.org })
      announcement = { kind, key: toHex(envelope.from), org: cert.org, root: toHex(cert.root), ...body }
      latencyMs = nowMs - envelope.timestampMs
    } catch (err) {
      const reason = err instanceof FedmeshError ? err.code : 'malformed'
      // A replay is usually an honest duplicate path through the mesh: drop it without penalty.
      const verdict: Verdict = err instanceof EnvelopeError && (err.reason === 'replay' || err.reason === 'stale') ? 'ignore' : 'reject'
      logger.warn({ peer: toHex(from), reason, err: (err as Error).message }, 'announcement rejected')
      this.emit('received', { key: toHex(from), verdict, reason })
      return verdict
    }
    if (this.#init.isOrgRevoked(announcement.root)) {
      this.emit('received', { key: announcement.key, verdict: 'ignore', reason: 'org-revoked', root: announcement.root })
      return 'ignore'
    }
    if (this.#init.admits?.(announcement.key) === false) {
      this.emit('received', { key: announcement.key, verdict: 'ignore', reason: 'quarantined' })
      return 'ignore'
    }
    const result = this.core.receive(announcement, clock.monotonicMs())
    this.emit('received', { key: announcement.key, verdict: result.verdict, latencyMs, ...(result.verdict === 'ignore' ? { reason: result.reason } : {}) })
    if (result.verdict === 'accept' && result.change !== undefined) this.#report(result.change)
    return result.verdict
  }

  /** Takes a member out of the live view at once (its organisation was revoked). */
  expel (key: string): void {
    const change = this.core.expel(key, this.#init.clock.monotonicMs())
    if (change !== undefined) this.#report(change)
  }

  #detectFailures (): void {
    for (const change of this.core.tick(this.#init.clock.monotonicMs())) this.#report(change)
  }

  #report (change: MemberChange): void {
    const m = change.member
    this.#init.logger.info({ member: m.key, org: m.org, incarnation: m.incarnation, status: m.status }, `member ${change.kind}`)
    this.emit('change', change)
    if (change.kind === 'joined' || change.kind === 'rejoined') {
      this.#announceSoon()
      this.#connect(m)
    }
  }

  // A newcomer should hear of us before our next heartbeat; coalesce bursts of joins into one.
  #announceSoon (): void {
    const nowMs = this.#init.clock.monotonicMs()
    if (nowMs - this.#lastAnnounceMs < this.heartbeatMs / 4) return
    void this.announce()
  }

  // Gossip relays through whoever we are connected to; dialing members directly keeps the mesh
  // connected when the bootstrap node goes away.
  #connect (m: Readonly<Member>): void {
    const { transport, logger } = this.#init
    const connected = transport.connectedPeers()
    if (connected.length >= (this.#init.peersTarget ?? 6)) return
    if (connected.some((k) => toHex(k) === m.key) || this.#dialing.has(m.key)) return
    if (m.addrs.length === 0) return
    this.#dialing.add(m.key)
    transport.dial(m.addrs)
      .catch((err) => logger.debug({ member: m.key, err: (err as Error).message }, 'dial to member failed'))
      .finally(() => this.#dialing.delete(m.key))
  }
}

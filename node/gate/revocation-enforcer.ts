import type { Clock } from '../../base/clock.js'
import { fromHex } from '../../base/bytes.js'
import type { Logger } from '../../base/log.js'
import type { Transport } from '../../base/transport.js'
import type { Membership } from '../../membership/membership.js'
import type { TrustStore } from '../../membership/trust-store.js'
import { type AuditInput, auditInputFields } from './audit.js'
import { RevocationError, type RefusalPath, type RevocationList } from './revocation.js'

// Carrying out the federation's revocations on this node: a revoked org's known nodes are cut off
// (banned in the trust book, expelled from the membership view, disconnected) with one audit entry,
// and from then on every gate refuses its nodes, counted per path. The revocation list persists it.

export interface RevocationEnforcerInit {
  orgRoot: string
  revocations: RevocationList
  trust: TrustStore
  membership: Pick<Membership, 'members' | 'expel'>
  transport: Pick<Transport, 'hangUp'>
  clock: Clock
  logger: Logger
  audit: (input: AuditInput) => Promise<unknown>
}

export class RevocationEnforcer {
  readonly #init: RevocationEnforcerInit
  readonly #revoking = new Map<string, Promise<void>>()

  constructor (init: RevocationEnforcerInit) {
    this.#init = init
  }

  /** Cuts off an org the federation revoked (idempotent; concurrent calls share one run). */
  async revokeOrg (root: string, org: string, detail: Record<string, string>): Promise<void> {
    if (root === this.#init.orgRoot) throw new RevocationError('revocation-own-org', 'a node cannot cut off its own organisation')
    const pending = this.#revoking.get(root)
    if (pending !== undefined) return await pending
    if (this.#init.revocations.isOrgRevoked(root)) return
    const run = this.#revoke(root, org, detail).finally(() => this.#revoking.delete(root))
    this.#revoking.set(root, run)
    await run
  }

  refusesPeer (peer: string, path: RefusalPath): boolean {
    return refusesPeer(this.#init, peer, path)
  }

  /** The federation's intake of PBFT envelopes: isOrgRevoked, counted as path 'federation'. */
  refusesOrg (root: string): boolean {
    const refused = this.#init.revocations.isOrgRevoked(root)
    if (refused) this.#init.revocations.count('federation')
    return refused
  }

  // A node of a revoked org announced itself (perhaps one we never saw): counted, and cut the first time.
  refuseAnnouncement (peer: string, root: string): void {
    const { revocations, trust, logger } = this.#init
    revocations.count('announcement')
    if (revocations.rootOfPeer(peer) !== undefined || trust.book.isBanned(peer)) return
    void this.#cutPeer(root, peer)
      .then(async () => await revocations.persist(root))
      .catch((err) => logger.error({ peer, err: (err as Error).message }, 'cannot record a revoked org\'s node'))
  }

  // Audit at least once: a crash before persist() re-audits when the federation re-applies it.
  async #revoke (root: string, org: string, detail: Record<string, string>): Promise<void> {
    const { revocations, membership, clock, logger, audit } = this.#init
    const auditInput = (peersCut: number): AuditInput => ({ action: 'federation.org.revoke', decision: 'deny', org, detail: { ...detail, root, peersCut: String(peersCut) } })
    auditInputFields(auditInput(0))
    revocations.add(root, org, clock.wallMs())
    const peers = membership.members().filter((m) => m.root === root).map((m) => m.key)
    await Promise.all(peers.map(async (peer) => await this.#cutPeer(root, peer)))
    await audit(auditInput(peers.length))
    await revocations.persist(root)
    logger.warn({ root, org, peersCut: peers.length }, 'organisation revoked: its nodes are cut off')
  }

  // The revocation's audit entry stands for every peer cut: no trust.threshold or member entries.
  async #cutPeer (root: string, peer: string): Promise<void> {
    const { revocations, trust, membership, transport, clock, logger } = this.#init
    revocations.addPeer(root, peer)
    trust.record(peer, 'revoked', clock.wallMs())
    membership.expel(peer)
    await transport.hangUp(fromHex(peer)).catch((err) => logger.warn({ peer, err: (err as Error).message }, 'hang-up failed'))
  }
}

// A peer is refused once it is known to belong to a revoked org: seen with such a certificate, or
// banned in the trust book (which outlives the revocation list's per-org cap). The connection gate
// asks this before the enforcer exists (the transport comes first).
export function refusesPeer (gate: { revocations: RevocationList, trust: TrustStore }, peer: string, path: RefusalPath): boolean {
  const refused = gate.revocations.rootOfPeer(peer) !== undefined || gate.trust.book.isBanned(peer)
  if (refused) gate.revocations.count(path)
  return refused
}

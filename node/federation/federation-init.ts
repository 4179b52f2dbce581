import type { Sanitizer } from '../../sanitize/index.js'
import type { AuditInput } from '../gate/audit.js'
import type { Clock, Rng } from '../../base/clock.js'
import type { Signer } from '../../base/ed25519.js'
import type { Logger } from '../../base/log.js'
import type { Transport } from '../../base/transport.js'
import type { PromiseLogState, PromiseRecord } from '../../consensus/pbft/promise-log.js'
import type { Genesis } from './genesis.js'
import type { FederationBatch, FederationInstall, FederationState } from './state.js'
import type { FederationConfig } from './config.js'

// What a node gives its Federation (federation.ts); the federation's parts take their share of it.

export interface FederationInit {
  genesis: Genesis
  /** The epoch this node starts from when its org holds no federation state yet (an admitted org's import). */
  config?: FederationConfig
  /** With config: the federation state core as that epoch began (EpochFile.core). */
  epochCore?: Uint8Array
  /** This node's key: it signs envelopes and ops and, while hosting, PBFT messages for the org. */
  signer: Signer
  certificate: Uint8Array
  org: string
  orgRoot: string
  transport: Transport
  clock: Clock
  rng: Rng
  logger: Logger
  sanitizer: Sanitizer
  /** Whether this node leads its org's Raft group (and so hosts the org's replica). */
  isLeader: () => boolean
  /** The node key (hex) of the org's Raft leader, which hosts the org's replica, if known. */
  orgLeader?: () => string | undefined
  /** Applies a committed batch to the org's federation state and board (idempotent per batch): results, and the state digest at a checkpoint. */
  commitBatch: (batch: FederationBatch) => Promise<{ results: Uint8Array[], digest?: Uint8Array }>
  /** Installs another org's federation state core (a state transfer whose digest checked out). */
  installState: (install: FederationInstall) => Promise<void>
  /** The federation state as applied on this node (undefined before the org applied any batch). */
  state: () => FederationState | undefined
  /** Commits the replica's promises into the org's Raft log (idempotent per requestId). */
  commitPromises: (instance: string, record: PromiseRecord, requestId: { client: string, seq: number }) => Promise<void>
  /** The org's replicated promise log for an instance, linearizable. */
  loadPromises: (instance: string) => Promise<PromiseLogState>
  audit: (input: AuditInput) => Promise<unknown>
  /** This node's audit-log head, anchored in the federation state every anchorIntervalMs. */
  auditHead?: () => { seq: number, hash: string }
  /** True (and counted) for an org the federation revoked: its envelopes are refused before anything else. */
  isOrgRevoked?: (root: string) => boolean
  /** Cuts a revoked org off at the node level (connections, trust, gates); idempotent. */
  revokeOrg?: (root: string, org: string, detail: Record<string, string>) => Promise<void>
  /** Reports a peer's conduct to the trust model (equivocation evidence against an org's nodes). */
  conduct?: (peer: string, event: 'equivocation') => void
  tickMs?: number
  anchorIntervalMs?: number
}

// The library entry point (`import { FedmeshNode } from 'fedmesh'`): the node, the types its
// methods take and return, and the errors a caller may catch. Everything else is internal.
import './runtime/polyfills.js' // first: libp2p needs them as it loads
export { FedmeshNode, type FedmeshNodeEvents, type FedmeshNodeInit, type MemberView, type NodeStatus } from './node.js'
export type { NewTask, ReadOptions, RaftOptions, TaskReceipt, WriteOptions } from './org/task-service.js'
export type { Task, TaskStatus } from './org/task-board.js'
export { TaskError, type TaskErrorCode } from './org/task-commands.js'
export { FederationError, type FederationReceipt, type FederationStatus } from './federation/federation.js'
export { GenesisError } from './federation/genesis.js'
export type { CapabilityCall, CapabilityHandler } from './gate/capabilities.js'
export { AuditError, type AuditEntry, type AuditInput, type AuditVerifyResult } from './gate/audit.js'
export { PolicyError } from './gate/policy.js'
export { RevocationError, type RevokedOrg } from './gate/revocation.js'
export { StorageError } from './runtime/level-storage.js'
export { FedmeshError, IdentityError } from '../base/errors.js'
export { OrgError } from '../base/org-certificate.js'
export { BootstrapError } from './runtime/bootstrap.js'
export { RaftError, type LeaveResult, type RaftErrorCode, type RaftMember, type RaftMembers, type RaftNodeStatus } from '../consensus/raft/driver.js'
export type { Member, MemberChange, MemberChangeKind, MemberStatus } from '../membership/membership-core.js'
export { TrustError, type PeerTrust, type TrustOptions } from '../membership/trust.js'
export {
  createSanitizer, SanitizeBlockedError, SanitizeConfigError, SanitizeInputError,
  type SanitizeReport, type SanitizeResult, type Sanitizer, type SanitizerOptions
} from '../sanitize/index.js'
export type { ByzantineKind, FaultKind, FaultStep, FederationSimReport, Scenario, SeriesPoint, SimEvent } from '../simulations/federation/scenario.js'
export { randomScenario, runFederationSim } from '../simulations/federation/federation-sim.js'

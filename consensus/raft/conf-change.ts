import { encode } from 'cborg'
import type { ConfState, NodeId } from '../types.js'
import { RAFT_CONF_MEMBERS_MAX, decodeCbor } from './messages.js'
import { RaftDecodeError } from './errors.js'

// Membership changes, one server at a time, carried as committed 'conf' entries. They take effect
// when committed; the leader admits the next only after the previous one committed.

export type ConfChangeType = 'add-learner' | 'promote' | 'remove'
export interface ConfChange {
  type: ConfChangeType
  node: NodeId
  /** Opaque to Raft (etcd's ConfChange.Context): what the state machine records with the change. */
  context?: Uint8Array
}

const TYPES: ConfChangeType[] = ['add-learner', 'promote', 'remove']
export const CONF_CHANGE_CONTEXT_BYTES_MAX = 256

export function encodeConfChange (cc: ConfChange): Uint8Array {
  return encode(cc.context === undefined ? [TYPES.indexOf(cc.type), cc.node] : [TYPES.indexOf(cc.type), cc.node, cc.context])
}

export function decodeConfChange (bytes: Uint8Array): ConfChange {
  const v = decodeCbor(bytes, 'raft-record-malformed')
  const type = Array.isArray(v) ? TYPES[v[0] as number] : undefined
  if (!Array.isArray(v) || (v.length !== 2 && v.length !== 3) || type === undefined || typeof v[1] !== 'string' || v[1].length === 0) {
    throw new RaftDecodeError('raft-record-malformed', 'malformed conf change')
  }
  if (v.length === 2) return { type, node: v[1] }
  if (!(v[2] instanceof Uint8Array) || v[2].length > CONF_CHANGE_CONTEXT_BYTES_MAX) throw new RaftDecodeError('raft-record-malformed', 'malformed conf change context')
  return { type, node: v[1], context: v[2] }
}

/** Whether cc makes sense against conf (so a committed change is never a no-op surprise). */
export function validConfChange (conf: ConfState, cc: ConfChange): boolean {
  const voter = conf.voters.includes(cc.node)
  const learner = conf.learners.includes(cc.node)
  if (cc.type === 'add-learner') return !voter && !learner && conf.voters.length + conf.learners.length < RAFT_CONF_MEMBERS_MAX
  if (cc.type === 'promote') return learner
  return (voter && conf.voters.length > 1) || learner
}

export function applyConfChange (conf: ConfState, cc: ConfChange): ConfState {
  if (!validConfChange(conf, cc)) return conf
  const voters = conf.voters.filter((n) => n !== cc.node)
  const learners = conf.learners.filter((n) => n !== cc.node)
  if (cc.type === 'add-learner') learners.push(cc.node)
  if (cc.type === 'promote') voters.push(cc.node)
  return { voters: voters.sort(), learners: learners.sort() }
}

export interface PeerProgressView { match: number, recentActive: boolean }

/**
 * Auto-promotion policy for the leader: the next learner to promote while voters are fewer than
 * votersTarget, choosing (deterministically) the most caught-up, active learner within lagEntriesMax.
 */
export function nextPromotion (conf: ConfState, progress: ReadonlyMap<NodeId, PeerProgressView>, lastIndex: number,
  votersTarget: number, lagEntriesMax: number): ConfChange | undefined {
  if (conf.voters.length >= votersTarget) return undefined
  const ready = conf.learners
    .map((node) => ({ node, pr: progress.get(node) }))
    .filter(({ pr }) => pr !== undefined && pr.recentActive && lastIndex - pr.match <= lagEntriesMax)
    .sort((a, b) => (b.pr!.match - a.pr!.match) || (a.node < b.node ? -1 : 1))
  const best = ready[0]
  return best === undefined ? undefined : { type: 'promote', node: best.node }
}

/**
 * etcd's strict reconfiguration check: removing `node` must leave voters of which a quorum is
 * healthy (heard from lately), or the group would stop committing.
 */
export function keepsQuorumWithout (conf: ConfState, node: NodeId, healthy: (voter: NodeId) => boolean): boolean {
  const remaining = conf.voters.filter((v) => v !== node)
  if (remaining.length === 0) return false
  return remaining.filter(healthy).length >= Math.floor(remaining.length / 2) + 1
}

/**
 * Autopilot's dead-server cleanup, for the leader (`self`): the voter unheard of for longer than
 * deadAfterMs to remove now (the longest silent first), if the voters left keep a healthy quorum.
 * Once it is removed, nextPromotion fills its place with a healthy learner, if there is one.
 */
export function deadVoterRemoval (conf: ConfState, self: NodeId, silentForMs: (voter: NodeId) => number,
  deadAfterMs: number, healthyWithinMs: number): ConfChange | undefined {
  const dead = conf.voters
    .filter((v) => v !== self && silentForMs(v) > deadAfterMs)
    .sort((a, b) => (silentForMs(b) - silentForMs(a)) || (a < b ? -1 : 1))[0]
  if (dead === undefined) return undefined
  const healthy = (v: NodeId): boolean => v === self || silentForMs(v) <= healthyWithinMs
  return keepsQuorumWithout(conf, dead, healthy) ? { type: 'remove', node: dead } : undefined
}

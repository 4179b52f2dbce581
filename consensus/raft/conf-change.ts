import { encode } from 'cborg'
import type { ConfState, NodeId } from '../types.js'
import { RAFT_CONF_MEMBERS_MAX, decodeCbor } from './messages.js'
import { RaftDecodeError } from './errors.js'

// Membership changes, one server at a time, carried as committed 'conf' entries. They take effect
// when committed; the leader admits the next only after the previous one committed.

export type ConfChangeType = 'add-learner' | 'promote' | 'remove'
export interface ConfChange { type: ConfChangeType, node: NodeId }

const TYPES: ConfChangeType[] = ['add-learner', 'promote', 'remove']

export function encodeConfChange (cc: ConfChange): Uint8Array {
  return encode([TYPES.indexOf(cc.type), cc.node])
}

export function decodeConfChange (bytes: Uint8Array): ConfChange {
  const v = decodeCbor(bytes, 'raft-record-malformed')
  const type = Array.isArray(v) ? TYPES[v[0] as number] : undefined
  if (!Array.isArray(v) || v.length !== 2 || type === undefined || typeof v[1] !== 'string' || v[1].length === 0) {
    throw new RaftDecodeError('raft-record-malformed', 'malformed conf change')
  }
  return { type, node: v[1] }
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

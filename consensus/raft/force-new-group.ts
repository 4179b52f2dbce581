import type { ConfState, Entry, HardState, NodeId } from '../types.js'
import { type ConfChange, applyConfChange, decodeConfChange, encodeConfChange } from './conf-change.js'
import type { RaftStorage } from './raft-storage.js'

// Disaster recovery for a group that lost its quorum for good (etcd's --force-new-cluster): one
// surviving node becomes the only voter, from its own log. Every entry it holds counts as
// committed (what it never learned was committed may have been, and nothing else survives), and
// conf entries appended after them make it the sole voter and remove everyone else. The entries
// carry a new term, so they match no entry another node holds; the removed nodes, whose logs may
// hold committed entries this one lacks, must never rejoin under their old identity (the context
// passed in lets the state machine record that).

export interface ForcedGroup {
  /** To persist (entries, then hard state) before the core starts over them. */
  entries: Entry[]
  hardState: HardState
  /** Everyone the recovery took out of the group. */
  removed: NodeId[]
}

/** Rewrites the storage view in place; undefined when `self` already is the only member. */
export function forceNewGroup (storage: RaftStorage, self: NodeId, removedContext: Uint8Array): ForcedGroup | undefined {
  let conf = confAtEnd(storage)
  if (conf.voters.length === 1 && conf.voters[0] === self && conf.learners.length === 0) return undefined
  const changes: ConfChange[] = []
  if (!conf.voters.includes(self) && !conf.learners.includes(self)) changes.push({ type: 'add-learner', node: self })
  if (!conf.voters.includes(self)) changes.push({ type: 'promote', node: self })
  const removed = [...conf.voters, ...conf.learners].filter((n) => n !== self).sort()
  for (const node of removed) changes.push({ type: 'remove', node, context: removedContext })
  const term = storage.hardState.term + 1
  let index = storage.lastIndex()
  const entries: Entry[] = changes.map((cc) => ({ term, index: ++index, type: 'conf', data: encodeConfChange(cc) }))
  for (const cc of changes) conf = applyConfChange(conf, cc)
  storage.append(entries)
  const hardState: HardState = { term, vote: '', commit: index }
  storage.hardState = hardState
  return { entries, hardState, removed }
}

function confAtEnd (storage: RaftStorage): ConfState {
  let conf = storage.snapshot().meta.conf
  for (let i = storage.snapshot().meta.index + 1; i <= storage.lastIndex(); i++) {
    const e = storage.entry(i)
    if (e?.type === 'conf') conf = applyConfChange(conf, decodeConfChange(e.data))
  }
  return conf
}

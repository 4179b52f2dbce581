// Shapes shared by the pure consensus cores (etcd-io/raft's Ready contract). A core never does I/O:
// the shell persists `hardState` + `entries` (+ `snapshot`) in one synced batch, THEN sends
// `messages`, THEN applies `committedEntries`, then calls advance(ready).

export type NodeId = string

export interface HardState {
  term: number
  /** Node voted for in `term`, or '' for none. */
  vote: NodeId
  commit: number
}

/** Client request identity for dedup: a retried proposal carries the same (client, seq). */
export interface RequestId {
  client: string
  seq: number
}

export type EntryType = 'normal' | 'conf'

export interface Entry {
  term: number
  index: number
  type: EntryType
  data: Uint8Array
  requestId?: RequestId
}

export interface ConfState {
  voters: NodeId[]
  learners: NodeId[]
}

export interface SnapshotMeta {
  index: number
  term: number
  conf: ConfState
}

export interface Snapshot {
  meta: SnapshotMeta
  data: Uint8Array
}

export type ProposeResult =
  | { ok: true }
  | { ok: false, reason: 'not-leader' | 'no-leader' | 'queue-full' }

export interface ConsensusCore<M, R> {
  tick(): void
  step(message: M): void
  propose(data: Uint8Array, requestId?: RequestId): ProposeResult
  hasReady(): boolean
  ready(): R
  advance(ready: R): void
}

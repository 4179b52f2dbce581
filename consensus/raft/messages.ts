import { encode } from 'cborg'
import { decodeCanonical } from '../../base/codec.js'
import type { ConfState, Entry, NodeId, RequestId, Snapshot } from '../types.js'
import { RaftDecodeError } from './errors.js'
import { wireReaders } from '../wire.js'


// Raft wire messages with etcd's names, one flat shape (as raftpb.Message), and a compact CBOR
// encoding as a positional array. Decoding treats the bytes as hostile: size first, then every field.

export const MESSAGE_TYPES = [
  'MsgApp', 'MsgAppResp', 'MsgVote', 'MsgVoteResp', 'MsgPreVote', 'MsgPreVoteResp', 'MsgHeartbeat',
  'MsgHeartbeatResp', 'MsgProp', 'MsgSnap', 'MsgTimeoutNow', 'MsgReadIndex', 'MsgReadIndexResp'
] as const
export type MessageType = typeof MESSAGE_TYPES[number]

export interface RaftMessage {
  type: MessageType
  from: NodeId
  to: NodeId
  term: number
  /** MsgApp: term of entry `index`; MsgAppResp reject: term at rejectHint; votes: last log term. */
  logTerm: number
  index: number
  commit: number
  entries: Entry[]
  reject: boolean
  rejectHint: number
  snapshot?: Snapshot
  /** ReadIndex request id (heartbeats echo it), or 'transfer' on a leadership-transfer campaign. */
  context: string
}

export const RAFT_MESSAGE_BYTES_MAX = 16 * 1024 * 1024
export const RAFT_MESSAGE_ENTRIES_MAX = 4096
export const RAFT_ID_LENGTH_MAX = 256
export const RAFT_CONF_MEMBERS_MAX = 256
const WIRE_VERSION = 1
const ENTRY_TYPES = ['normal', 'conf'] as const

export function message (type: MessageType, from: NodeId, to: NodeId, term: number, fields: Partial<RaftMessage> = {}): RaftMessage {
  return { type, from, to, term, logTerm: 0, index: 0, commit: 0, entries: [], reject: false, rejectHint: 0, context: '', ...fields }
}

export function entryToWire (e: Entry): unknown[] {
  return [e.term, e.index, ENTRY_TYPES.indexOf(e.type), e.data, e.requestId?.client ?? null, e.requestId?.seq ?? null]
}

export function snapshotToWire (s: Snapshot): unknown[] {
  return [s.meta.index, s.meta.term, s.meta.conf.voters, s.meta.conf.learners, s.data]
}

export function encodeRaftMessage (m: RaftMessage): Uint8Array {
  const bytes = encode([
    WIRE_VERSION, MESSAGE_TYPES.indexOf(m.type), m.from, m.to, m.term, m.logTerm, m.index, m.commit,
    m.entries.map(entryToWire), m.reject, m.rejectHint, m.snapshot === undefined ? null : snapshotToWire(m.snapshot),
    m.context
  ])
  if (bytes.length > RAFT_MESSAGE_BYTES_MAX) throw new RaftDecodeError('raft-message-too-large', `message of ${bytes.length} bytes`)
  return bytes
}

export function decodeRaftMessage (bytes: Uint8Array): RaftMessage {
  if (bytes.length > RAFT_MESSAGE_BYTES_MAX) throw new RaftDecodeError('raft-message-too-large', `message of ${bytes.length} bytes`)
  const v = array(decodeCbor(bytes, 'raft-message-malformed'), 13, 'message')
  if (v[0] !== WIRE_VERSION) fail('unknown wire version')
  const type = MESSAGE_TYPES[uint(v[1], 'type')]
  if (type === undefined) fail('unknown message type')
  const entries = array(v[8], undefined, 'entries')
  if (entries.length > RAFT_MESSAGE_ENTRIES_MAX) fail('too many entries')
  const m = message(type, id(v[2], 'from'), id(v[3], 'to'), uint(v[4], 'term'), {
    logTerm: uint(v[5], 'logTerm'),
    index: uint(v[6], 'index'),
    commit: uint(v[7], 'commit'),
    entries: entries.map(entryFromWire),
    reject: bool(v[9], 'reject'),
    rejectHint: uint(v[10], 'rejectHint'),
    context: str(v[12], 'context')
  })
  if (v[11] !== null) m.snapshot = snapshotFromWire(v[11])
  return m
}

export function decodeCbor (bytes: Uint8Array, code: 'raft-message-malformed' | 'raft-record-malformed'): unknown {
  return decodeCanonical(bytes, (reason) => new RaftDecodeError(code, reason))
}

export function entryFromWire (x: unknown): Entry {
  const v = array(x, 6, 'entry')
  const type = ENTRY_TYPES[uint(v[2], 'entry type')]
  if (type === undefined) fail('unknown entry type')
  if (!(v[3] instanceof Uint8Array)) fail('entry data is not bytes')
  const e: Entry = { term: uint(v[0], 'entry term'), index: uint(v[1], 'entry index'), type, data: v[3] }
  if (v[4] !== null || v[5] !== null) e.requestId = { client: id(v[4], 'client'), seq: uint(v[5], 'seq') } satisfies RequestId
  return e
}

export function snapshotFromWire (x: unknown): Snapshot {
  const v = array(x, 5, 'snapshot')
  if (!(v[4] instanceof Uint8Array)) fail('snapshot data is not bytes')
  const conf: ConfState = { voters: ids(v[2], 'voters'), learners: ids(v[3], 'learners') }
  return { meta: { index: uint(v[0], 'snapshot index'), term: uint(v[1], 'snapshot term'), conf }, data: v[4] }
}

function fail (why: string): never {
  throw new RaftDecodeError('raft-message-malformed', why)
}

const { array, uint } = wireReaders(fail)

function bool (x: unknown, what: string): boolean {
  if (typeof x !== 'boolean') fail(`${what} is not a boolean`)
  return x
}

function str (x: unknown, what: string): string {
  if (typeof x !== 'string' || x.length > RAFT_ID_LENGTH_MAX) fail(`${what} is not a bounded string`)
  return x
}

function id (x: unknown, what: string): string {
  const s = str(x, what)
  if (s.length === 0) fail(`${what} is empty`)
  return s
}

function ids (x: unknown, what: string): string[] {
  const v = array(x, undefined, what)
  if (v.length > RAFT_CONF_MEMBERS_MAX) fail(`${what} too long`)
  return v.map((s) => id(s, what))
}

import { createHash } from 'node:crypto'
import { decodeCanonical, encodeCanonical } from '../../base/codec.js'
import { PbftDecodeError } from './errors.js'
import { wireReaders } from '../wire.js'


// PBFT messages with the paper's names (Castro & Liskov, OSDI '99). Every replica message is signed
// by its sender over a domain-separated canonical CBOR encoding of (sender, body); certificates inside
// ViewChange and NewView carry the signed messages themselves so any receiver can check them.
// Decoding treats the bytes as hostile: size first, then every field and every count is bounded.

export const PBFT_MESSAGE_TYPES = ['Request', 'PrePrepare', 'Prepare', 'Commit', 'Checkpoint', 'ViewChange', 'NewView', 'Reply', 'Status', 'Committed'] as const
export type PbftMessageType = typeof PBFT_MESSAGE_TYPES[number]

/** A client's request; (client, timestamp) identifies it for duplicate suppression. */
export interface ClientRequest { client: string, timestamp: number, op: Uint8Array }

export interface RequestBody { type: 'Request', request: ClientRequest }
export interface PrePrepare { type: 'PrePrepare', view: number, seq: number, digest: Uint8Array, batch: ClientRequest[] }
export interface Prepare { type: 'Prepare', view: number, seq: number, digest: Uint8Array }
export interface Commit { type: 'Commit', view: number, seq: number, digest: Uint8Array }
export interface Checkpoint { type: 'Checkpoint', seq: number, stateDigest: Uint8Array }
/** A prepared certificate: the primary's pre-prepare and matching prepares from other replicas, a quorum in all (quorumSize). */
export interface PreparedProof { prePrepare: Signed<PrePrepare>, prepares: Array<Signed<Prepare>> }
export interface ViewChange {
  type: 'ViewChange'
  view: number
  stableSeq: number
  /** A quorum of matching signed checkpoints for stableSeq (empty when stableSeq is 0). */
  checkpointProof: Array<Signed<Checkpoint>>
  prepared: PreparedProof[]
}
export interface NewView { type: 'NewView', view: number, viewChanges: Array<Signed<ViewChange>>, prePrepares: Array<Signed<PrePrepare>> }
export interface Reply { type: 'Reply', view: number, client: string, timestamp: number, result: Uint8Array }
/** A waiting replica's progress: peers answer with what it is missing (Committed, or a stable checkpoint proof). */
export interface Status { type: 'Status', view: number, lastExecuted: number }
/** A commit certificate: its view's primary's pre-prepare and matching commits from a quorum of distinct replicas. */
export interface Committed { type: 'Committed', prePrepare: Signed<PrePrepare>, commits: Array<Signed<Commit>> }

export type PbftBody = RequestBody | PrePrepare | Prepare | Commit | Checkpoint | ViewChange | NewView | Reply | Status | Committed

export interface Signed<B extends PbftBody = PbftBody> { from: string, body: B, signature: Uint8Array }
export type PbftMessage = Signed

export const PBFT_MESSAGE_BYTES_MAX = 8 * 1024 * 1024
export const PBFT_ID_LENGTH_MAX = 256
export const PBFT_OP_BYTES_MAX = 64 * 1024
export const PBFT_BATCH_MAX = 256
export const PBFT_REPLICAS_MAX = 64
/** Prepared certificates in one view change and pre-prepares in one new view: the log window bound. */
export const PBFT_WINDOW_MAX = 1024
const DIGEST_BYTES = 32
const SIGNATURE_BYTES = 64
const WIRE_VERSION = 1
const SIGNING_DOMAIN = 'fedmesh/pbft/v1'

// ---- encoding ----

function requestToWire (r: ClientRequest): unknown[] {
  return [r.client, r.timestamp, r.op]
}

function signedToWire (s: Signed): unknown[] {
  return [s.from, bodyToWire(s.body), s.signature]
}

function bodyToWire (b: PbftBody): unknown[] {
  const t = PBFT_MESSAGE_TYPES.indexOf(b.type)
  switch (b.type) {
    case 'Request': return [t, requestToWire(b.request)]
    case 'PrePrepare': return [t, b.view, b.seq, b.digest, b.batch.map(requestToWire)]
    case 'Prepare': case 'Commit': return [t, b.view, b.seq, b.digest]
    case 'Checkpoint': return [t, b.seq, b.stateDigest]
    case 'ViewChange': return [t, b.view, b.stableSeq, b.checkpointProof.map(signedToWire), b.prepared.map((p) => [signedToWire(p.prePrepare), p.prepares.map(signedToWire)])]
    case 'NewView': return [t, b.view, b.viewChanges.map(signedToWire), b.prePrepares.map(signedToWire)]
    case 'Reply': return [t, b.view, b.client, b.timestamp, b.result]
    case 'Status': return [t, b.view, b.lastExecuted]
    case 'Committed': return [t, signedToWire(b.prePrepare), b.commits.map(signedToWire)]
  }
}

/** The bytes a replica signs: domain, sender and body, canonically encoded. */
export function signingBytes (from: string, body: PbftBody): Uint8Array {
  return encodeCanonical([SIGNING_DOMAIN, from, bodyToWire(body)])
}

export function sign<B extends PbftBody> (signer: { sign(message: Uint8Array): Uint8Array }, from: string, body: B): Signed<B> {
  return { from, body, signature: signer.sign(signingBytes(from, body)) }
}

export function encodePbftMessage (m: PbftMessage): Uint8Array {
  const bytes = encodeCanonical([WIRE_VERSION, ...signedToWire(m)])
  if (bytes.length > PBFT_MESSAGE_BYTES_MAX) throw new PbftDecodeError('pbft-message-too-large', `message of ${bytes.length} bytes`)
  return bytes
}

/** Digest of a batch (the empty batch is PBFT's null request). */
export function batchDigest (batch: ClientRequest[]): Uint8Array {
  return sha256(encodeCanonical(batch.map(requestToWire)))
}

export function sha256 (bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(bytes).digest())
}

// ---- decoding ----

export function decodePbftMessage (bytes: Uint8Array): PbftMessage {
  if (bytes.length > PBFT_MESSAGE_BYTES_MAX) throw new PbftDecodeError('pbft-message-too-large', `message of ${bytes.length} bytes`)
  const value = decodeCanonical(bytes, (reason) => new PbftDecodeError('pbft-message-malformed', reason))
  const v = array(value, 4, 'message')
  if (v[0] !== WIRE_VERSION) fail('unknown wire version')
  return signedFromWire(v.slice(1), 0)
}

function signedFromWire (x: unknown, depth: number): Signed {
  const v = array(x, 3, 'signed message')
  return { from: id(v[0], 'from'), body: bodyFromWire(v[1], depth), signature: bytesOf(v[2], 'signature', SIGNATURE_BYTES) }
}

function signedOf<T extends PbftMessageType> (x: unknown, type: T, depth: number): Signed<Extract<PbftBody, { type: T }>> {
  const s = signedFromWire(x, depth + 1)
  if (s.body.type !== type) fail(`expected a signed ${type}`)
  return s as Signed<Extract<PbftBody, { type: T }>>
}

function bodyFromWire (x: unknown, depth: number): PbftBody {
  const v = array(x, undefined, 'body')
  const type = PBFT_MESSAGE_TYPES[uint(v[0], 'type')]
  if (type === undefined) fail('unknown message type')
  // Certificates nest one level (ViewChange in NewView, PrePrepare in ViewChange), never deeper.
  if (depth > 2 || (depth > 0 && (type === 'NewView' || type === 'Request' || type === 'Reply' || type === 'Status' || type === 'Committed'))) fail(`${type} nested too deep`)
  switch (type) {
    case 'Request':
      fields(v, 2, type)
      return { type, request: requestFromWire(v[1]) }
    case 'PrePrepare': {
      fields(v, 5, type)
      const batch = list(v[4], PBFT_BATCH_MAX, 'batch').map(requestFromWire)
      return { type, view: uint(v[1], 'view'), seq: uint(v[2], 'seq'), digest: bytesOf(v[3], 'digest', DIGEST_BYTES), batch }
    }
    case 'Prepare': case 'Commit':
      fields(v, 4, type)
      return { type, view: uint(v[1], 'view'), seq: uint(v[2], 'seq'), digest: bytesOf(v[3], 'digest', DIGEST_BYTES) }
    case 'Checkpoint':
      fields(v, 3, type)
      return { type, seq: uint(v[1], 'seq'), stateDigest: bytesOf(v[2], 'state digest', DIGEST_BYTES) }
    case 'ViewChange': {
      fields(v, 5, type)
      const prepared = list(v[4], PBFT_WINDOW_MAX, 'prepared').map((p) => {
        const pv = array(p, 2, 'prepared proof')
        return { prePrepare: signedOf(pv[0], 'PrePrepare', depth), prepares: list(pv[1], PBFT_REPLICAS_MAX, 'prepares').map((s) => signedOf(s, 'Prepare', depth)) }
      })
      return {
        type,
        view: uint(v[1], 'view'),
        stableSeq: uint(v[2], 'stable seq'),
        checkpointProof: list(v[3], PBFT_REPLICAS_MAX, 'checkpoint proof').map((s) => signedOf(s, 'Checkpoint', depth)),
        prepared
      }
    }
    case 'NewView':
      fields(v, 4, type)
      return {
        type,
        view: uint(v[1], 'view'),
        viewChanges: list(v[2], PBFT_REPLICAS_MAX, 'view changes').map((s) => signedOf(s, 'ViewChange', depth)),
        prePrepares: list(v[3], PBFT_WINDOW_MAX, 'pre-prepares').map((s) => signedOf(s, 'PrePrepare', depth))
      }
    case 'Reply':
      fields(v, 5, type)
      return { type, view: uint(v[1], 'view'), client: id(v[2], 'client'), timestamp: uint(v[3], 'timestamp'), result: bytesOf(v[4], 'result', undefined) }
    case 'Status':
      fields(v, 3, type)
      return { type, view: uint(v[1], 'view'), lastExecuted: uint(v[2], 'last executed') }
    case 'Committed':
      fields(v, 3, type)
      return { type, prePrepare: signedOf(v[1], 'PrePrepare', depth), commits: list(v[2], PBFT_REPLICAS_MAX, 'commits').map((s) => signedOf(s, 'Commit', depth)) }
  }
}

function requestFromWire (x: unknown): ClientRequest {
  const v = array(x, 3, 'request')
  return { client: id(v[0], 'client'), timestamp: uint(v[1], 'timestamp'), op: bytesOf(v[2], 'op', undefined) }
}

function fail (why: string): never {
  throw new PbftDecodeError('pbft-message-malformed', why)
}

const { array, uint } = wireReaders(fail)

function fields (v: unknown[], length: number, type: string): void {
  if (v.length !== length) fail(`${type} has ${v.length} fields, expected ${length}`)
}

function list (x: unknown, max: number, what: string): unknown[] {
  const v = array(x, undefined, what)
  if (v.length > max) fail(`${what} has more than ${max} items`)
  return v
}

function id (x: unknown, what: string): string {
  if (typeof x !== 'string' || x.length === 0 || x.length > PBFT_ID_LENGTH_MAX) fail(`${what} is not a bounded, non-empty string`)
  return x
}

function bytesOf (x: unknown, what: string, length: number | undefined): Uint8Array {
  if (!(x instanceof Uint8Array)) fail(`${what} is not bytes`)
  if (length !== undefined ? x.length !== length : x.length > PBFT_OP_BYTES_MAX) fail(`${what} has a bad length (${x.length})`)
  return x
}

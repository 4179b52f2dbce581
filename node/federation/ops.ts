import { PBFT_ID_LENGTH_MAX } from '../../consensus/pbft/index.js'
import { decodeCanonical, encodeCanonical } from '../../base/codec.js'
import { FedmeshError } from '../../base/errors.js'
import { toHex } from '../../base/bytes.js'
import { verify, type Signer } from '../../base/ed25519.js'
import { ORG_NAME_PATTERN, verifyCertificate } from '../../base/org-certificate.js'
import { finishCommand, proposeCommand } from '../org/task-commands.js'

// What a federation request carries: one operation, signed by the node that proposed it, with that
// node's org certificate. PBFT orders opaque requests and a Byzantine primary could put any client
// id on one, so the authority of an operation (which org proposed a task, approved an admission,
// anchored an audit head) comes from this signature, never from the client id or the transport.
// The signature binds the PBFT instance (federation epoch), client id and timestamp: a request is
// neither replayable into another epoch nor under another client's name.
//
// Opened by the replica host before it commits a batch into its org's Raft log; certificate
// expiry is not checked here (it would make the outcome depend on the host's clock) — expired
// certificates are refused at the gossip layer, when the request first arrives.

export type FederationOp =
  /** A cross-org task; `target` (an org root) alone may claim it, or any org when null. */
  | { kind: 'task', title: string, capability: string, payload: string, target: string | null }
  /** Approves admitting an org (name + root key) into the federation. */
  | { kind: 'admit', name: string, root: string }
  /** Approves revoking a member org. */
  | { kind: 'revoke', root: string }
  /** The proposing node's audit-log head: entry `auditSeq` has hash `head`. */
  | { kind: 'anchor', auditSeq: number, head: string }
  /** Claims the federated task at `ref` (epoch.seq.position) for the signing node; only its target org may. */
  | { kind: 'claim', ref: string }
  /** The claimer's result for the task at `ref`: it reaches every org's board, the proposer's included. */
  | { kind: 'finish', ref: string, status: 'done' | 'failed', result: string }

/** An op whose signature and certificate checked out: who proposed it is a fact. */
export interface OpenedOp { op: FederationOp, node: string, root: string, org: string }

export class FederationOpError extends FedmeshError {}

const DOMAIN = 'fedmesh/federation-op/v1'
const KEY_HEX = /^[0-9a-f]{64}$/
const TARGETED_TASK = 'task'

export interface OpContext { instance: string, client: string, timestamp: number }

/** The request's op bytes: [kind, body, certificate, signature]. */
export function signOp (signer: Signer, certificate: Uint8Array, ctx: OpContext, op: FederationOp): Uint8Array {
  const [kind, body] = encodeBody(op)
  return encodeCanonical([kind, body, certificate, signer.sign(signingBytes(ctx, kind, body))])
}

/** Decodes and authenticates a request's op; throws FederationOpError on anything amiss. */
export function openOp (bytes: Uint8Array, ctx: OpContext): OpenedOp {
  const v = decodeCanonical(bytes, () => new FederationOpError('op-malformed', 'undecodable op'))
  if (!Array.isArray(v) || v.length !== 4) throw new FederationOpError('op-malformed', 'an op holds [kind, body, certificate, signature]')
  const [kind, body, certificate, signature] = v as unknown[]
  if (typeof kind !== 'string' || !Array.isArray(body) || !(certificate instanceof Uint8Array) || !(signature instanceof Uint8Array)) {
    throw new FederationOpError('op-malformed', 'op fields have the wrong types')
  }
  let cert
  try {
    cert = verifyCertificate(certificate, { nowMs: 0 })
  } catch (err) {
    throw new FederationOpError('op-bad-certificate', (err as Error).message)
  }
  const node = toHex(cert.node)
  const root = toHex(cert.root)
  if (!ctx.client.startsWith(`${root}.${node}.`)) throw new FederationOpError('op-client-mismatch', 'the client id does not name the signing node')
  if (!verify(cert.node, signingBytes(ctx, kind, body), signature)) throw new FederationOpError('op-bad-signature', 'op signature does not verify')
  return { op: decodeBody(kind, body), node, root, org: cert.org }
}

/** The client id prefix a node's requests must carry (see openOp). */
export function clientPrefix (root: string, node: Uint8Array): string {
  const prefix = `${root}.${toHex(node)}.`
  if (prefix.length + 24 > PBFT_ID_LENGTH_MAX) throw new FederationOpError('op-malformed', 'client id would exceed its bound')
  return prefix
}

function signingBytes (ctx: OpContext, kind: string, body: unknown[]): Uint8Array {
  return encodeCanonical([DOMAIN, ctx.instance, ctx.client, ctx.timestamp, kind, body])
}

function encodeBody (op: FederationOp): [string, unknown[]] {
  switch (op.kind) {
    case 'task': return [TARGETED_TASK, [op.title, op.capability, op.payload, op.target]]
    case 'admit': return ['admit', [op.name, op.root]]
    case 'revoke': return ['revoke', [op.root]]
    case 'anchor': return ['anchor', [op.auditSeq, op.head]]
    case 'claim': return ['claim', [op.ref]]
    case 'finish': return ['finish', [op.ref, op.status, op.result]]
  }
}

function decodeBody (kind: string, b: unknown[]): FederationOp {
  if (kind === TARGETED_TASK && b.length === 4) {
    const [title, capability, payload, target] = b
    if (typeof payload !== 'string' || (target !== null && !isKey(target))) throw new FederationOpError('op-malformed', 'bad task payload or target')
    const cmd = proposeCommand({ title, capability, payload: parseJson(payload, 'task payload') }, 'federation')
    return { kind: 'task', title: cmd.title, capability: cmd.capability, payload: cmd.payload, target: target as string | null }
  }
  if (kind === 'admit' && b.length === 2 && typeof b[0] === 'string' && ORG_NAME_PATTERN.test(b[0]) && isKey(b[1])) return { kind: 'admit', name: b[0], root: b[1] }
  if (kind === 'revoke' && b.length === 1 && isKey(b[0])) return { kind: 'revoke', root: b[0] }
  if (kind === 'anchor' && b.length === 2 && Number.isSafeInteger(b[0]) && (b[0] as number) >= 1 && isKey(b[1])) return { kind: 'anchor', auditSeq: b[0] as number, head: b[1] as string }
  if (kind === 'claim' && b.length === 1 && isRef(b[0])) return { kind: 'claim', ref: b[0] }
  if (kind === 'finish' && b.length === 3 && isRef(b[0]) && (b[1] === 'done' || b[1] === 'failed') && typeof b[2] === 'string') {
    const cmd = finishCommand(b[1] === 'done' ? 'complete' : 'fail', 't1', 'federation', parseJson(b[2], 'result'))
    return { kind: 'finish', ref: b[0], status: b[1], result: cmd.result }
  }
  throw new FederationOpError('op-malformed', `unknown or malformed op '${kind.slice(0, 32)}'`)
}

/** A federated task's coordinates: epoch.seq.position. */
export const TASK_REF = /^[0-9]{1,15}\.[1-9][0-9]{0,15}\.[0-9]{1,5}$/

function isRef (x: unknown): x is string {
  return typeof x === 'string' && TASK_REF.test(x)
}

function parseJson (text: string, what: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    throw new FederationOpError('op-malformed', `${what} is not JSON`)
  }
}

function isKey (x: unknown): x is string {
  return typeof x === 'string' && KEY_HEX.test(x)
}

import { decodeCanonical, encodeCanonical } from '../base/codec.js'
import { FedmeshError } from '../base/errors.js'

// The body of a membership envelope (type 'membership.alive' or 'membership.leave'). The sender's
// key and organisation are the envelope's, so they are covered by its signature. Canonical CBOR map:
//   { v: 1, inc: incarnation, seq: sequence, addrs: [multiaddr...], caps: [capability...], cert: bytes }
// `cert` is the sender's node certificate (node/org.ts): its organisation is believed only through it.
export const ANNOUNCE_TYPE = 'membership.alive'
export const LEAVE_TYPE = 'membership.leave'
export const ADDRS_MAX = 16
export const ADDR_LENGTH_MAX = 256
export const CAPABILITIES_MAX = 64
export const CAPABILITY_LENGTH_MAX = 64
export const CERTIFICATE_BYTES_MAX = 512

export type AnnouncementKind = 'alive' | 'leave'

export interface AnnouncementBody {
  incarnation: number
  seq: number
  addrs: string[]
  capabilities: string[]
  certificate: Uint8Array
}

export interface Announcement extends Omit<AnnouncementBody, 'certificate'> {
  kind: AnnouncementKind
  key: string
  org: string
  /** The org root key (hex) the sender's verified certificate chains to. */
  root: string
}

export function encodeAnnouncementBody (body: AnnouncementBody): Uint8Array {
  return encodeCanonical({ v: 1, inc: body.incarnation, seq: body.seq, addrs: body.addrs, caps: body.capabilities, cert: body.certificate })
}

export function decodeAnnouncementBody (bytes: Uint8Array): AnnouncementBody {
  const value = decodeCanonical(bytes) as Record<string, unknown> | null
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value.v !== 1) {
    throw new FedmeshError('malformed', 'announcement must be a map with v: 1')
  }
  const { inc, seq, addrs, caps, cert } = value
  if (!isCounter(inc) || !isCounter(seq)) throw new FedmeshError('malformed', 'announcement inc/seq must be non-negative integers')
  if (!(cert instanceof Uint8Array) || cert.length > CERTIFICATE_BYTES_MAX) throw new FedmeshError('malformed', `announcement cert must be at most ${CERTIFICATE_BYTES_MAX} bytes`)
  return {
    incarnation: inc,
    seq,
    addrs: stringList(addrs, ADDRS_MAX, ADDR_LENGTH_MAX, 'addrs'),
    capabilities: stringList(caps, CAPABILITIES_MAX, CAPABILITY_LENGTH_MAX, 'caps'),
    certificate: cert
  }
}

function isCounter (value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

function stringList (value: unknown, countMax: number, lengthMax: number, name: string): string[] {
  if (!Array.isArray(value) || value.length > countMax) throw new FedmeshError('malformed', `${name} must be a list of at most ${countMax}`)
  for (const item of value) {
    if (typeof item !== 'string' || item.length === 0 || item.length > lengthMax) {
      throw new FedmeshError('malformed', `${name} entries must be strings of 1..${lengthMax} characters`)
    }
  }
  return value as string[]
}

import { decodeCanonical, encodeCanonical } from '../node/codec.js'
import { FedmeshError } from '../node/errors.js'

// The body of a membership envelope (type 'membership.alive' or 'membership.leave'). The sender's
// key and organisation are the envelope's, so they are covered by its signature. Canonical CBOR map:
//   { v: 1, inc: incarnation, seq: sequence, addrs: [multiaddr...], caps: [capability...] }
export const ANNOUNCE_TYPE = 'membership.alive'
export const LEAVE_TYPE = 'membership.leave'
export const ADDRS_MAX = 16
export const ADDR_LENGTH_MAX = 256
export const CAPABILITIES_MAX = 64
export const CAPABILITY_LENGTH_MAX = 64

export type AnnouncementKind = 'alive' | 'leave'

export interface AnnouncementBody {
  incarnation: number
  seq: number
  addrs: string[]
  capabilities: string[]
}

export interface Announcement extends AnnouncementBody {
  kind: AnnouncementKind
  key: string
  org: string
}

export function encodeAnnouncementBody (body: AnnouncementBody): Uint8Array {
  return encodeCanonical({ v: 1, inc: body.incarnation, seq: body.seq, addrs: body.addrs, caps: body.capabilities })
}

export function decodeAnnouncementBody (bytes: Uint8Array): AnnouncementBody {
  const value = decodeCanonical(bytes) as Record<string, unknown> | null
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value.v !== 1) {
    throw new FedmeshError('malformed', 'announcement must be a map with v: 1')
  }
  const { inc, seq, addrs, caps } = value
  if (!isCounter(inc) || !isCounter(seq)) throw new FedmeshError('malformed', 'announcement inc/seq must be non-negative integers')
  return {
    incarnation: inc,
    seq,
    addrs: stringList(addrs, ADDRS_MAX, ADDR_LENGTH_MAX, 'addrs'),
    capabilities: stringList(caps, CAPABILITIES_MAX, CAPABILITY_LENGTH_MAX, 'caps')
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

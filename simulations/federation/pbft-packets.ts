import { decodeCanonical } from '../../base/codec.js'
import { type PbftMessage, decodePbftMessage } from '../../consensus/pbft/index.js'
import { KIND_REPLICA, PBFT_CHANNEL, PBFT_TOPIC } from '../../node/federation/envelopes.js'
import type { SimPacket } from '../world/sim-transport.js'

/**
 * The PBFT replica message inside a packet a simulated node sends, opened without verification (the
 * simulator looks at what its own nodes say), or undefined for other traffic, requests, catch-up and
 * garbage. A federation envelope is [version, type, from, org, timestampMs, nonce, body, signature]
 * (base/envelope.ts) with body [instance, certificate, to, kind, payload] (envelopes.ts).
 */
export function replicaMessageOf (packet: SimPacket): { instance: string, to: string[], m: PbftMessage } | undefined {
  if (!((packet.kind === 'message' && packet.name === PBFT_CHANNEL) || (packet.kind === 'topic' && packet.name === PBFT_TOPIC))) return undefined
  try {
    const body = (decodeCanonical(packet.bytes) as unknown[])[6]
    if (!(body instanceof Uint8Array)) return undefined
    const [instance, , to, kind, payload] = decodeCanonical(body) as [string, unknown, string[], number, Uint8Array]
    return kind === KIND_REPLICA ? { instance, to, m: decodePbftMessage(payload) } : undefined
  } catch {
    return undefined
  }
}

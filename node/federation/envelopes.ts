import { type Outbound, type PbftMessage, type VerifyFn, PBFT_ID_LENGTH_MAX, PBFT_OP_BYTES_MAX, decodePbftMessage, encodePbftMessage } from '../../consensus/pbft/index.js'
import { decodeCanonical, encodeCanonical } from '../../base/codec.js'
import { ReplayGuard, openEnvelope, sealEnvelope } from '../../base/envelope.js'
import { FedmeshError } from '../../base/errors.js'
import { fromHex, toHex } from '../../base/bytes.js'
import { verify, type Signer } from '../../base/ed25519.js'
import { verifyCertificate } from '../../base/org-certificate.js'
import type { Verdict } from '../../base/transport.js'
import { CATCH_UP_KINDS } from './catch-up.js'
import type { FederationEpochs } from './epochs.js'
import { FederationError } from './errors.js'
import type { FederationInit } from './federation-init.js'
import { instanceId } from './config.js'

// The federation's envelopes, both ways. Out: PBFT messages, requests and catch-up messages sealed
// by this node with its certificate, sent straight to the hosts heard from lately or gossiped.
// In: opened (signature, replay guard, size), then believed only for the orgs of the envelope's
// epoch that the sender's certificate chains to; the node keys those certificates vouched for are
// what a signature "by org R" may be made with (verify).

export const PBFT_TOPIC = 'fedmesh/pbft/v1'
/** Point-to-point: replica messages to hosts heard from lately, and replies to the proposing node. */
export const PBFT_CHANNEL = 'pbft'
export const FEDERATION_ENVELOPE_BYTES_MAX = 1024 * 1024
export const KIND_REPLICA = 0
export const KIND_REQUEST = 1
const ENVELOPE_TYPE = 'pbft.message'
const NONCE_BYTES = 16
const NODES_PER_ORG_MAX = 64
const TO_MAX = 64

/** Where an accepted envelope's content goes. */
export interface EnvelopeHandlers {
  /** A client request for this org's replica of instance. */
  request: (instance: string, op: Uint8Array, id: { client: string, seq: number }) => void
  /** A replica message addressed to this org's replica of instance. */
  replica: (instance: string, m: PbftMessage) => void
  /** A replica's reply to the clients in `to`. */
  reply: (instance: string, to: string[], m: PbftMessage) => void
  catchUp: (instance: string, root: string, node: Uint8Array, kind: number, payload: Uint8Array) => void
  /** Hands m to `to` if that is a client on this node (nothing to send then). */
  local: (to: string, m: PbftMessage) => boolean
}

export interface PbftEnvelopesInit extends Pick<FederationInit, 'signer' | 'certificate' | 'org' | 'orgRoot' | 'transport' | 'clock' | 'rng' | 'logger' | 'isOrgRevoked'> {
  epochs: FederationEpochs
  /** How long a host heard from stays the place to send its org's messages. */
  hostFreshMs: number
  handlers: EnvelopeHandlers
}

/** A federation envelope: [instance, certificate, to, kind, payload] sealed by the sending node. */
export function sealPbftEnvelope (signer: Signer, f: { org: string, certificate: Uint8Array, instance: string, kind: number, to: string[], payload: Uint8Array, timestampMs: number, nonce: Uint8Array }): Uint8Array {
  const body = encodeCanonical([f.instance, f.certificate, f.to, f.kind, f.payload])
  return sealEnvelope(signer, { type: ENVELOPE_TYPE, org: f.org, body, timestampMs: f.timestampMs, nonce: f.nonce })
}

export class PbftEnvelopes {
  readonly stats = { received: 0, sent: 0, rejected: {} as Record<string, number> }
  /** Accepts a signature by an org's root key when a node key it certified made it. */
  readonly verify: VerifyFn
  readonly #init: PbftEnvelopesInit
  /** Per org root (hex): node keys its certificates vouched for, newest last. */
  readonly #certified = new Map<string, Map<string, Uint8Array>>()
  /** Per org root (hex): the node key that made its latest verified PBFT signature. */
  readonly #lastSigner = new Map<string, Uint8Array>()
  readonly #replayGuard = new ReplayGuard()
  /** Per org root: the node that last spoke for its replica, and when (monotonic ms). */
  readonly #hosts = new Map<string, { node: Uint8Array, heardMs: number }>()

  constructor (init: PbftEnvelopesInit) {
    this.#init = init
    this.#certify(init.orgRoot, init.signer.publicKey)
    // The key that made an org's last good signature first: its host signs nearly everything, so
    // one verification per message rather than one per certified node tried in turn.
    this.verify = (rootKey, message, signature) => {
      const root = toHex(rootKey)
      const nodes = this.#certified.get(root)
      if (nodes === undefined) return false
      const last = this.#lastSigner.get(root)
      if (last !== undefined && nodes.has(toHex(last)) && verify(last, message, signature)) return true
      for (const nodeKey of nodes.values()) {
        if (nodeKey === last || !verify(nodeKey, message, signature)) continue
        this.#lastSigner.set(root, nodeKey)
        return true
      }
      return false
    }
  }

  /** Receives from the topic and the channel until the returned function is called. */
  listen (): () => void {
    const { transport } = this.#init
    // Gossip may arrive through a relay: the envelope's own signature names its sender. A direct
    // message must come from the node that signed it.
    const stopTopic = transport.onTopic(PBFT_TOPIC, (from, bytes) => this.#receive(from, bytes, undefined))
    const stopChannel = transport.onMessage(PBFT_CHANNEL, (from, bytes) => { this.#receive(from, bytes, from) })
    return () => { stopTopic(); stopChannel() }
  }

  /** Node keys (hex) an org certified, as learnt from its envelopes. */
  certifiedNodes (root: string): Iterable<string> {
    return this.#certified.get(root)?.keys() ?? []
  }

  /** A revoked org's node keys no longer speak for it. */
  forget (root: string): void {
    this.#certified.delete(root)
  }

  seal (instance: string, kind: number, to: string[], payload: Uint8Array): Uint8Array {
    const init = this.#init
    return sealPbftEnvelope(init.signer, { org: init.org, certificate: init.certificate, instance, kind, to, payload, timestampMs: init.clock.wallMs(), nonce: init.rng.bytes(NONCE_BYTES) })
  }

  async publish (bytes: Uint8Array): Promise<void> {
    if (bytes.length > FEDERATION_ENVELOPE_BYTES_MAX) return this.#reject('oversize-outbound')
    try {
      await this.#init.transport.publish(PBFT_TOPIC, bytes)
      this.stats.sent++
    } catch (err) {
      this.#init.logger.debug({ err: (err as Error).message }, 'pbft message not published')
    }
  }

  sendTo (node: Uint8Array, bytes: Uint8Array): void {
    this.#init.transport.send(node, PBFT_CHANNEL, bytes)
  }

  /**
   * The core addresses a broadcast once per replica with the same message: one envelope each,
   * sent straight to the hosts heard from lately and to the node behind a client id; gossiped
   * (reaching every node) when any recipient's host is not known to be current.
   */
  send (instance: string, messages: Outbound[]): void {
    const groups = new Map<PbftMessage, string[]>()
    for (const { to, message } of messages) {
      const group = groups.get(message)
      if (group !== undefined) group.push(to)
      else groups.set(message, [to])
    }
    const nowMs = this.#init.clock.monotonicMs()
    for (const [message, to] of groups) {
      const remote = to.filter((t) => !this.#init.handlers.local(t, message)).slice(0, TO_MAX)
      if (remote.length === 0) continue
      const envelope = this.seal(instance, KIND_REPLICA, remote, encodePbftMessage(message))
      const direct = remote.map((t) => {
        if (message.body.type === 'Reply') return clientNode(t)
        const host = this.#hosts.get(t)
        return host !== undefined && nowMs - host.heardMs < this.#init.hostFreshMs ? host.node : undefined
      })
      if (direct.some((node) => node === undefined)) {
        void this.publish(envelope)
        continue
      }
      for (const node of direct) this.sendTo(node!, envelope)
      this.stats.sent++
    }
  }

  #receive (from: Uint8Array, bytes: Uint8Array, expectedSender: Uint8Array | undefined): Verdict {
    const init = this.#init
    const nowMs = init.clock.wallMs()
    try {
      const envelope = openEnvelope(bytes, { nowMs, ...(expectedSender !== undefined ? { expectedSender } : {}), replayGuard: this.#replayGuard, bytesMax: FEDERATION_ENVELOPE_BYTES_MAX })
      if (envelope.type !== ENVELOPE_TYPE) throw new FederationError('malformed', `unexpected type ${envelope.type}`)
      const v = decodeCanonical(envelope.body)
      if (!Array.isArray(v) || v.length !== 5) throw new FederationError('malformed', 'pbft envelope body must hold 5 fields')
      const [instance, certificate, to, kind, payload] = v as unknown[]
      const config = init.epochs.configOf(instance)
      if (config === undefined) return 'ignore'   // another federation or epoch sharing the topic: not a fault
      if (!(certificate instanceof Uint8Array) || !(payload instanceof Uint8Array) || !Array.isArray(to) || to.length > TO_MAX ||
        !to.every((t) => typeof t === 'string' && t.length <= PBFT_ID_LENGTH_MAX)) throw new FederationError('malformed', 'pbft envelope fields have the wrong types or sizes')
      const cert = verifyCertificate(certificate, { nowMs, node: envelope.from, org: envelope.org })
      const root = toHex(cert.root)
      if (init.isOrgRevoked?.(root) === true) throw new FederationError('org-revoked', `org ${cert.org} was revoked from the federation`)
      if (!config.orgs.some((o) => o.root === root)) throw new FederationError('not-federated', `org ${cert.org} is not a member of this federation epoch`)
      this.#certify(root, envelope.from)
      this.stats.received++
      if (kind === KIND_REQUEST) this.#receiveRequest(instanceId(config), root, toHex(envelope.from), payload)
      else if (kind === KIND_REPLICA) this.#receiveReplica(instanceId(config), root, envelope.from, to as string[], payload)
      else if (CATCH_UP_KINDS.has(kind as number)) init.handlers.catchUp(instanceId(config), root, envelope.from, kind as number, payload)
      else throw new FederationError('malformed', 'unknown pbft envelope kind')
      return 'accept'
    } catch (err) {
      const reason = err instanceof FedmeshError ? err.code : 'malformed'
      this.#reject(reason)
      init.logger.debug({ peer: toHex(from), reason, err: (err as Error).message }, 'pbft envelope rejected')
      return reason === 'replay' || reason === 'stale' ? 'ignore' : 'reject'
    }
  }

  #receiveReplica (instance: string, root: string, node: Uint8Array, to: string[], payload: Uint8Array): void {
    const m = decodePbftMessage(payload)
    if (m.from !== root) throw new FederationError('replica-mismatch', 'a node may only speak for the org its certificate chains to')
    if (m.body.type === 'Reply') return this.#init.handlers.reply(instance, to, m)
    this.#hosts.set(root, { node, heardMs: this.#init.clock.monotonicMs() })
    if (to.includes(this.#init.orgRoot)) this.#init.handlers.replica(instance, m)
  }

  #receiveRequest (instance: string, root: string, node: string, payload: Uint8Array): void {
    const v = decodeCanonical(payload)
    if (!Array.isArray(v) || v.length !== 3) throw new FederationError('malformed', 'a request holds [client, timestamp, op]')
    const [client, timestamp, op] = v as unknown[]
    if (typeof client !== 'string' || client.length > PBFT_ID_LENGTH_MAX || !client.startsWith(`${root}.${node}.`)) throw new FederationError('client-mismatch', 'a client id must name the sender\'s org root and key')
    if (typeof timestamp !== 'number' || !Number.isSafeInteger(timestamp) || timestamp < 0 || !(op instanceof Uint8Array) || op.length > PBFT_OP_BYTES_MAX) {
      throw new FederationError('malformed', 'bad request timestamp or op')
    }
    this.#init.handlers.request(instance, op, { client, seq: timestamp })
  }

  #certify (root: string, nodeKey: Uint8Array): void {
    let nodes = this.#certified.get(root)
    if (nodes === undefined) this.#certified.set(root, nodes = new Map())
    const key = toHex(nodeKey)
    nodes.delete(key)
    nodes.set(key, nodeKey)
    if (nodes.size > NODES_PER_ORG_MAX) nodes.delete(nodes.keys().next().value!)
  }

  #reject (reason: string): void {
    this.stats.rejected[reason] = (this.stats.rejected[reason] ?? 0) + 1
  }
}

/** The node key a client id names (root.node.…): where its replies go. */
function clientNode (client: string): Uint8Array | undefined {
  const node = client.split('.')[1]
  return node !== undefined && /^[0-9a-f]{64}$/.test(node) ? fromHex(node) : undefined
}

import { fromHex } from '../../base/bytes.js'
import type { NodeIdentity } from '../../base/ed25519.js'
import { encodePbftMessage } from '../../consensus/pbft/index.js'
import { KIND_REPLICA, sealPbftEnvelope } from '../../node/federation/envelopes.js'
import { type ByzantineBehaviour, ByzantineReplica } from '../pbft-byzantine.js'
import type { Prng } from '../world/prng.js'
import type { SimClock } from '../world/scheduler.js'
import type { SimPacket } from '../world/sim-transport.js'
import { replicaMessageOf } from './pbft-packets.js'
import type { ByzantineKind } from './scenario.js'

// A Byzantine org in the whole-federation simulator: its nodes run the honest code (so they know
// what to say) and lie on the wire. Every PBFT replica message one of them sends is opened and
// handed to the PBFT simulator's ByzantineReplica, which turns it into zero, one or several
// messages per recipient (equivocating, forging, replaying, hiding certificates in view changes,
// or nothing at all); each is signed by the node's own key — the only key it has — sealed in a
// fresh envelope with its real certificate, and sent.

const BEHAVIOUR: Record<ByzantineKind, ByzantineBehaviour> = {
  equivocate: 'equivocate', forge: 'forge', replay: 'replay', silent: 'silent', 'conflicting-view-change': 'conflicting-view-changes'
}

export interface ByzantineOrgInit {
  kind: ByzantineKind
  org: string
  root: string
  replicas: readonly string[]
  prng: Prng
  /** The org root (hex) of the node at an address. */
  rootOf: (address: string) => string | undefined
}

export class ByzantineOrg {
  readonly #init: ByzantineOrgInit
  readonly #replicas = new Map<string, ByzantineReplica>()

  constructor (init: ByzantineOrgInit) {
    this.#init = init
  }

  /** The lying outbound hook of one of its nodes. */
  outbound (node: NodeIdentity, certificate: Uint8Array, clock: () => SimClock): (to: string, packet: SimPacket) => SimPacket[] {
    const init = this.#init
    // The org's replica signs as the org; the hosting node's key makes the signature.
    const signer = { publicKey: fromHex(init.root), sign: (m: Uint8Array) => node.sign(m) }
    const replica = this.#replicas.get(node.publicKeyHex) ?? new ByzantineReplica(init.root, BEHAVIOUR[init.kind], init.replicas, signer, init.prng, [])
    this.#replicas.set(node.publicKeyHex, replica)
    return (to, packet) => {
      const opened = replicaMessageOf(packet)
      if (opened === undefined || opened.m.body.type === 'Reply') return [packet]
      const m = opened.m
      return replica.outbound(init.rootOf(to) ?? to, m).map((out) => {
        const payload = out instanceof Uint8Array ? out : encodePbftMessage(out)
        const bytes = sealPbftEnvelope(node, { org: init.org, certificate, instance: opened.instance, kind: KIND_REPLICA, to: opened.to, payload, timestampMs: clock().wallMs(), nonce: init.prng.bytes(16) })
        return { ...packet, bytes }
      })
    }
  }
}

// The seam between protocols and the network. Libp2pTransport implements it over TCP/Noise/yamux/
// gossipsub; the simulator implements it over a simulated network. Peers are named by their ed25519
// public keys (32 bytes): the key is the identity, addresses are hints.

/** A gossip handler's judgement, as gossipsub understands it: reject penalises the propagator. */
export type Verdict = 'accept' | 'ignore' | 'reject'

/**
 * A gossiped message and the neighbour that delivered it (its publisher, or a node relaying it).
 * Gossip carries no transport-level author: what is published must authenticate itself (every
 * fedmesh topic carries signed envelopes), which spares a second signature and verification per
 * message in the transport.
 */
export type TopicHandler = (from: Uint8Array, bytes: Uint8Array) => Verdict
export type RequestHandler = (from: Uint8Array, bytes: Uint8Array) => Promise<Uint8Array>
/** A one-way message from `from`, the connection's authenticated peer key. */
export type MessageHandler = (from: Uint8Array, bytes: Uint8Array) => void

export interface Transport {
  readonly localKey: Uint8Array
  /** Publishes to a topic; resolves with the number of peers it was sent to (0 if none yet). */
  publish(topic: string, bytes: Uint8Array): Promise<number>
  /** Handles a topic: the handler validates and acts; only 'accept'ed messages are forwarded. */
  onTopic(topic: string, handler: TopicHandler): () => void
  /** Sends one request on a channel and awaits the reply (bounded size, timeout). */
  request(peer: Uint8Array, channel: string, bytes: Uint8Array, options?: { timeoutMs?: number }): Promise<Uint8Array>
  onRequest(channel: string, handler: RequestHandler): () => void
  /**
   * Sends one message on a one-way channel without waiting: delivery is best effort (a bounded
   * per-peer queue that drops when full), for protocols that retransmit themselves (Raft).
   */
  send(peer: Uint8Array, channel: string, bytes: Uint8Array): void
  /** Handles a one-way channel's inbound messages (one handler per channel). */
  onMessage(channel: string, handler: MessageHandler): () => void
  /** Connects to one peer by its addresses (multiaddr strings in production, all of one peer). */
  dial(addresses: string[]): Promise<void>
  /** Keys of peers with an open connection. */
  connectedPeers(): Uint8Array[]
  /** Closes every connection to a peer (resolves once closed; nothing to do if none is open). */
  hangUp(peer: Uint8Array): Promise<void>
}

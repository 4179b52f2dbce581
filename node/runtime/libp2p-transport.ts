import './polyfills.js'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@libp2p/yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { gossipsub, TopicValidatorResult, type GossipSub, type GossipsubOpts } from '@libp2p/gossipsub'
import type { PeerScoreThresholds } from '@libp2p/gossipsub/score'
import { TRUST_APP_SPECIFIC_WEIGHT } from '../../membership/trust.js'
import type { ConnectionGater, PeerId, Stream } from '@libp2p/interface'
import { messageStreamToDuplex } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { pipe } from 'it-pipe'
import * as lp from 'it-length-prefixed'
import { decodeCanonical, encodeCanonical } from '../../base/codec.js'
import { FedmeshError } from '../../base/errors.js'
import { libp2pPrivateKey, peerIdOf, publicKeyOfPeerId } from './key-file.js'
import { toHex } from '../../base/bytes.js'
import { type NodeIdentity } from '../../base/ed25519.js'
import type { Logger } from '../../base/log.js'
import { MessageChannel, type DropReason } from './message-channel.js'
import { systemClock } from './system-clock.js'
import type { MessageHandler, RequestHandler, TopicHandler, Transport, Verdict } from '../../base/transport.js'

export const RPC_PROTOCOL = '/fedmesh/rpc/1.0.0'
export const RPC_FRAME_BYTES_MAX = 1024 * 1024 + 4096
export const RPC_TIMEOUT_MS_DEFAULT = 5_000
/** One-way message frames (Raft appends and snapshots ride on them). */
export const MESSAGE_FRAME_BYTES_MAX = 16 * 1024 * 1024
const RPC_INBOUND_STREAMS_MAX = 256
// Inbound connection admission. libp2p's defaults — 5 connections per second per remote host, 10
// upgrading at once — reset all but 5 of 40 simultaneous dials from one machine: a federation runs
// many nodes behind one address (one host, one NAT egress), and they all dial their bootstrap node
// when they boot together. A host may open 64 a second, 64 may be in their Noise/yamux upgrade at
// once (each costs a handshake; 10 s upgrade timeout), and the connection cap stays the bound.
export const INBOUND_CONNECTIONS_PER_HOST_PER_SECOND_MAX = 64
export const INBOUND_UPGRADES_MAX = 64
const CHANNEL_LENGTH_MAX = 64

export interface Libp2pTransportInit {
  identity: NodeIdentity
  listen: string[]
  /** Announced instead of the listening addresses (getMultiaddrs answers these). */
  announce?: string[]
  logger: Logger
  connectionsMax?: number
  /** gossipsub heartbeat; mesh repairs happen this often. */
  gossipHeartbeatMs?: number
  /** Trust feeds routing: gossipsub's application-specific score per peer key (hex), and its thresholds. */
  scoring?: { appSpecificScore: (key: string) => number, thresholds: Partial<PeerScoreThresholds>, topicScoreCap: number }
  /** Connection gate: true refuses dials to and connections from this peer key (a revoked org's node). */
  denyPeer?: (key: Uint8Array) => boolean
}

const VERDICTS: Record<Verdict, TopicValidatorResult> = {
  accept: TopicValidatorResult.Accept,
  ignore: TopicValidatorResult.Ignore,
  reject: TopicValidatorResult.Reject
}

export type FedmeshLibp2p = Libp2p<{ identify: ReturnType<ReturnType<typeof identify>>, ping: ReturnType<ReturnType<typeof ping>>, pubsub: GossipSub }>

export class Libp2pTransport implements Transport {
  readonly localKey: Uint8Array
  readonly #requestHandlers = new Map<string, RequestHandler>()
  readonly #channels = new Map<string, MessageChannel>()

  private constructor (readonly libp2p: FedmeshLibp2p, identity: NodeIdentity, readonly logger: Logger) {
    this.localKey = identity.publicKey
  }

  static async create (init: Libp2pTransportInit): Promise<Libp2pTransport> {
    const gossipOptions: Partial<GossipsubOpts> = {
      // Every topic carries signed envelopes, verified by their handlers: gossipsub's own signature
      // (signing on publish, verifying each message received, with a key import each time) was the
      // largest CPU cost of an idle node. Message ids are then the content's hash.
      globalSignaturePolicy: 'StrictNoSign',
      emitSelf: false,
      allowPublishToZeroTopicPeers: true,
      heartbeatInterval: init.gossipHeartbeatMs ?? 700,
      maxInboundDataLength: RPC_FRAME_BYTES_MAX,
      D: 4,
      Dlo: 2,
      Dhi: 8,
      Dout: 1
    }
    // No IP-colocation penalty: a federation legitimately runs many nodes behind one address (one
    // machine, one NAT egress); gossipsub's default (-5 × (peers on an IP − 10)²) graylisted every
    // peer of a 20-node mesh on one host. Sybils are kept out by certificates and trust instead.
    gossipOptions.scoreParams = { IPColocationFactorWeight: 0 }
    if (init.scoring !== undefined) {
      gossipOptions.scoreParams = { ...gossipOptions.scoreParams, appSpecificScore: appScoreByPeerId(init.scoring.appSpecificScore), appSpecificWeight: TRUST_APP_SPECIFIC_WEIGHT, topicScoreCap: init.scoring.topicScoreCap }
      gossipOptions.scoreThresholds = init.scoring.thresholds
    }
    const libp2p = await createLibp2p({
      privateKey: await libp2pPrivateKey(init.identity),
      addresses: { listen: init.listen, ...(init.announce !== undefined && init.announce.length > 0 ? { announce: announceAddresses(init.announce) } : {}) },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      connectionManager: {
        maxConnections: init.connectionsMax ?? 256,
        inboundConnectionThreshold: INBOUND_CONNECTIONS_PER_HOST_PER_SECOND_MAX,
        maxIncomingPendingConnections: INBOUND_UPGRADES_MAX
      },
      connectionGater: gaterOf(init.denyPeer),
      services: {
        identify: identify(),
        ping: ping(),
        pubsub: gossipsub(gossipOptions)
      }
    }).catch((err: unknown) => { throw listenProblem(err) ?? err })
    const transport = new Libp2pTransport(libp2p, init.identity, init.logger)
    await libp2p.handle(RPC_PROTOCOL, (stream, connection) => {
      void transport.#serve(stream, connection.remotePeer)
    }, { maxInboundStreams: RPC_INBOUND_STREAMS_MAX })
    return transport
  }

  get pubsub (): GossipSub {
    return this.libp2p.services.pubsub
  }

  multiaddrs (): string[] {
    return this.libp2p.getMultiaddrs().map((a) => a.toString())
  }

  async publish (topic: string, bytes: Uint8Array): Promise<number> {
    const result = await this.pubsub.publish(topic, bytes)
    return result.recipients.length
  }

  onTopic (topic: string, handler: TopicHandler): () => void {
    this.pubsub.subscribe(topic)
    this.pubsub.topicValidators.set(topic, (propagator, message) => {
      if (message.type !== 'unsigned') return TopicValidatorResult.Reject
      const from = propagator.publicKey?.raw
      if (from === undefined || from.length !== 32) return TopicValidatorResult.Reject
      return VERDICTS[handler(from, message.data)]
    })
    return () => {
      this.pubsub.topicValidators.delete(topic)
      this.pubsub.unsubscribe(topic)
    }
  }

  onRequest (channel: string, handler: RequestHandler): () => void {
    this.#requestHandlers.set(channel, handler)
    return () => this.#requestHandlers.delete(channel)
  }

  async request (peer: Uint8Array, channel: string, bytes: Uint8Array, options: { timeoutMs?: number } = {}): Promise<Uint8Array> {
    const signal = AbortSignal.timeout(options.timeoutMs ?? RPC_TIMEOUT_MS_DEFAULT)
    const stream = await this.libp2p.dialProtocol(peerIdOf(peer), RPC_PROTOCOL, { signal })
    const onAbort = (): void => { stream.abort(new FedmeshError('rpc-timeout', `rpc on ${channel} timed out`)) }
    signal.addEventListener('abort', onAbort, { once: true })
    try {
      const duplex = messageStreamToDuplex(stream)
      const replies: Uint8Array[] = []
      await Promise.all([
        pipe([encodeCanonical([channel, bytes])], (s) => lp.encode(s), duplex.sink),
        pipe(duplex.source, (s) => lp.decode(s, { maxDataLength: RPC_FRAME_BYTES_MAX }), async (s) => {
          for await (const frame of s) replies.push(frame.subarray())
        })
      ])
      const reply = replies[0]
      if (replies.length !== 1 || reply === undefined) throw new FedmeshError('rpc-malformed', `expected one reply frame, got ${replies.length}`)
      return decodeReply(reply)
    } catch (err) {
      if (signal.aborted) throw new FedmeshError('rpc-timeout', `rpc on ${channel} timed out`)
      throw err
    } finally {
      signal.removeEventListener('abort', onAbort)
    }
  }

  async dial (addresses: string[]): Promise<void> {
    await this.libp2p.dial(addresses.map((a) => multiaddr(a)))
  }

  connectedPeers (): Uint8Array[] {
    return this.libp2p.getPeers().flatMap((p) => p.publicKey?.raw !== undefined ? [p.publicKey.raw] : [])
  }

  async hangUp (peer: Uint8Array): Promise<void> {
    await this.libp2p.hangUp(peerIdOf(peer))
  }

  send (peer: Uint8Array, channel: string, bytes: Uint8Array): void {
    this.#channel(channel).send(peer, bytes)
  }

  onMessage (channel: string, handler: MessageHandler): () => void {
    const listening = this.#channel(channel).listen(handler)
    listening.catch((err) => this.logger.error({ channel, err: (err as Error).message }, 'cannot handle message channel'))
    return () => { void listening.then(async (unhandle) => await unhandle()).catch(() => undefined) }
  }

  /** Messages dropped per channel and reason (full queues, unreachable peers...). */
  messageDrops (): Array<{ channel: string, reason: DropReason, count: number }> {
    return [...this.#channels].flatMap(([channel, c]) => Object.entries(c.dropped).map(([reason, count]) => ({ channel, reason: reason as DropReason, count })))
  }

  async stop (): Promise<void> {
    for (const channel of this.#channels.values()) channel.stop()
    await this.libp2p.stop()
  }

  #channel (channel: string): MessageChannel {
    let c = this.#channels.get(channel)
    if (c === undefined) {
      c = new MessageChannel({ libp2p: this.libp2p, channel, logger: this.logger, clock: systemClock, frameBytesMax: MESSAGE_FRAME_BYTES_MAX })
      this.#channels.set(channel, c)
    }
    return c
  }

  // One request frame in, one reply frame out; anything else closes the stream with an error reply.
  async #serve (stream: Stream, remote: PeerId): Promise<void> {
    const from = remote.publicKey?.raw
    const duplex = messageStreamToDuplex(stream)
    const handlers = this.#requestHandlers
    const logger = this.logger
    try {
      await pipe(
        duplex.source,
        (s) => lp.decode(s, { maxDataLength: RPC_FRAME_BYTES_MAX }),
        async function * (frames) {
          for await (const frame of frames) {
            yield await answer(frame.subarray())
            return
          }
        },
        (s) => lp.encode(s),
        duplex.sink
      )
    } catch (err) {
      logger.debug({ err: (err as Error).message, peer: remote.toString() }, 'rpc stream failed')
      stream.abort(err as Error)
    }

    async function answer (frame: Uint8Array): Promise<Uint8Array> {
      try {
        const value = decodeCanonical(frame)
        if (!Array.isArray(value) || value.length !== 2) throw new FedmeshError('rpc-malformed', 'request must be [channel, bytes]')
        const [channel, body] = value as unknown[]
        if (typeof channel !== 'string' || channel.length > CHANNEL_LENGTH_MAX || !(body instanceof Uint8Array)) {
          throw new FedmeshError('rpc-malformed', 'request must be [channel, bytes]')
        }
        const handler = handlers.get(channel)
        if (handler === undefined) throw new FedmeshError('rpc-no-handler', `no handler for channel ${channel}`)
        if (from === undefined) throw new FedmeshError('rpc-unauthenticated', 'peer has no ed25519 key')
        return encodeCanonical([true, await handler(from, body)])
      } catch (err) {
        const code = err instanceof FedmeshError ? err.code : 'rpc-handler-failed'
        logger.warn({ code, err: (err as Error).message, peer: remote.toString() }, 'rpc request refused')
        return encodeCanonical([false, code, (err as Error).message.slice(0, 512)])
      }
    }
  }
}

/** Checked before libp2p sees them: a bad --announce is one line, not a stack trace. */
function announceAddresses (addrs: string[]): string[] {
  for (const a of addrs) {
    try {
      multiaddr(a)
    } catch {
      throw new FedmeshError('announce-malformed', `--announce '${a}' is not a multiaddr (e.g. /ip4/203.0.113.7/tcp/7400 or /dns4/node.example.org/tcp/7400)`)
    }
  }
  return addrs
}

// libp2p names each address it could not listen on in its error's text ("  ADDR: Error: listen
// EADDRINUSE…", with stacks): one line instead, saying which address and what to do.
function listenProblem (err: unknown): FedmeshError | undefined {
  const failures = [...String((err as Error).message).matchAll(/^\s*(\/\S+): (?:\w*Error: )?(.*)$/gm)]
  if (failures.length === 0) return undefined
  const inUse = failures.filter((f) => f[2]!.includes('EADDRINUSE')).map((f) => f[1]!)
  if (inUse.length > 0) {
    return new FedmeshError('listen-address-in-use', `cannot listen on ${inUse.join(', ')}: the address is in use (another node?); choose another with --listen, e.g. --listen /ip4/0.0.0.0/tcp/7410 (tcp/0: any free port)`)
  }
  return new FedmeshError('listen-failed', `cannot listen on ${failures.map((f) => `${f[1]!} (${f[2]!})`).join(', ')}; check --listen`)
}

// Checked on dials by peer id and, once the Noise handshake names the remote, on every inbound and
// outbound connection (dials by address alone learn the peer there).
function gaterOf (denyPeer: ((key: Uint8Array) => boolean) | undefined): ConnectionGater {
  if (denyPeer === undefined) return {}
  const denied = (peerId: PeerId): boolean => {
    const key = peerId.publicKey?.raw
    return key !== undefined && denyPeer(key)
  }
  return { denyDialPeer: denied, denyInboundEncryptedConnection: denied, denyOutboundEncryptedConnection: denied }
}

function decodeReply (frame: Uint8Array): Uint8Array {
  const value = decodeCanonical(frame)
  if (Array.isArray(value) && value[0] === true && value[1] instanceof Uint8Array) return value[1]
  if (Array.isArray(value) && value[0] === false && typeof value[1] === 'string') {
    throw new FedmeshError(value[1], `remote refused: ${String(value[2])}`)
  }
  throw new FedmeshError('rpc-malformed', 'malformed rpc reply')
}

/** gossipsub names peers by id string: score the ed25519 key inside it; neutral (0) for ids without one. */
export function appScoreByPeerId (scoreOfKey: (key: string) => number): (peerId: string) => number {
  return (peerId) => {
    const key = publicKeyOfPeerId(peerId)
    return key === undefined ? 0 : scoreOfKey(toHex(key))
  }
}

import { fromHex, toHex } from '../../base/bytes.js'
import { FedmeshError } from '../../base/errors.js'
import type { MessageHandler, RequestHandler, TopicHandler, Transport, Verdict } from '../../base/transport.js'
import type { SimNetwork } from './network.js'
import type { SimClock } from './scheduler.js'

// The Transport seam over the simulated network, for the production drivers and services. The
// sender a handler sees is the packet's source endpoint, as a Noise connection authenticates the
// remote key in production. Gossip is a flood to every current subscriber (one hop: gossipsub's
// mesh forwarding is not what the protocols above depend on); requests time out on simulated time;
// a remote refusal arrives as the FedmeshError code the libp2p transport would raise. A handler that
// throws is contained as libp2p contains it (a topic message ignored, a one-way message dropped, a
// request refused with rpc-handler-failed) and reported to onHandlerError, so a simulator can fail
// the seed on a bug that production would only log.

export type SimPacket =
  | { kind: 'topic', name: string, bytes: Uint8Array }
  | { kind: 'message', name: string, bytes: Uint8Array }
  | { kind: 'request', name: string, id: number, bytes: Uint8Array }
  | { kind: 'reply', id: number, bytes: Uint8Array }
  | { kind: 'refusal', id: number, code: string, message: string }

/** Topic subscriptions of every endpoint on one network (gossipsub's view of who listens). */
export class SimTopics {
  readonly #subscribers = new Map<string, Set<string>>()

  subscribe (topic: string, address: string): () => void {
    let set = this.#subscribers.get(topic)
    if (set === undefined) this.#subscribers.set(topic, set = new Set())
    set.add(address)
    return () => set.delete(address)
  }

  subscribers (topic: string): string[] {
    return [...this.#subscribers.get(topic) ?? []].sort()
  }
}

export const SIM_REQUEST_TIMEOUT_MS_DEFAULT = 5_000
const BYTES_MAX = 4 * 1024 * 1024

export interface SimTransportStats { verdicts: Record<Verdict, number>, unhandled: number, refused: number, handlerErrors: number }

export class SimTransport implements Transport {
  readonly localKey: Uint8Array
  readonly address: string
  readonly stats: SimTransportStats = { verdicts: { accept: 0, ignore: 0, reject: 0 }, unhandled: 0, refused: 0, handlerErrors: 0 }
  readonly #net: SimNetwork<SimPacket>
  readonly #topics: SimTopics
  readonly #clock: SimClock
  readonly #topicHandlers = new Map<string, TopicHandler>()
  readonly #unsubscribe = new Map<string, () => void>()
  readonly #requestHandlers = new Map<string, RequestHandler>()
  readonly #messageHandlers = new Map<string, MessageHandler>()
  readonly #pending = new Map<number, { peer: string, resolve: (b: Uint8Array) => void, reject: (e: Error) => void }>()
  readonly #detach: () => void
  /** Intercepts every outbound packet (a Byzantine org's rewriting, a checker's tap): what goes out instead. */
  outbound: ((to: string, packet: SimPacket) => SimPacket[]) | undefined
  /** Sees every packet that arrives, before its handler (a trace); return undefined to drop it. */
  inbound: ((from: string, packet: SimPacket) => SimPacket | undefined) | undefined
  /** What a handler threw (a topic or message handler, or a request handler failing with other than a FedmeshError). */
  onHandlerError: ((err: unknown) => void) | undefined
  #requests = 0
  #closed = false

  constructor (net: SimNetwork<SimPacket>, topics: SimTopics, clock: SimClock, localKey: Uint8Array) {
    this.localKey = localKey
    this.address = toHex(localKey)
    this.#net = net
    this.#topics = topics
    this.#clock = clock
    this.#detach = net.attach(this.address, clock, (from, packet) => this.#receive(from, packet))
  }

  async publish (topic: string, bytes: Uint8Array): Promise<number> {
    const to = this.#topics.subscribers(topic).filter((a) => a !== this.address)
    for (const address of to) this.#send(address, { kind: 'topic', name: topic, bytes })
    return to.length
  }

  onTopic (topic: string, handler: TopicHandler): () => void {
    this.#topicHandlers.set(topic, handler)
    this.#unsubscribe.get(topic)?.()
    const unsubscribe = this.#topics.subscribe(topic, this.address)
    this.#unsubscribe.set(topic, unsubscribe)
    return () => {
      if (this.#topicHandlers.get(topic) !== handler) return
      this.#topicHandlers.delete(topic)
      unsubscribe()
    }
  }

  async request (peer: Uint8Array, channel: string, bytes: Uint8Array, options: { timeoutMs?: number } = {}): Promise<Uint8Array> {
    if (bytes.length > BYTES_MAX) throw new FedmeshError('rpc-oversize', `request of ${bytes.length} bytes`)
    const id = ++this.#requests
    return await new Promise<Uint8Array>((resolve, reject) => {
      this.#pending.set(id, { peer: toHex(peer), resolve, reject })
      void this.#clock.sleep(options.timeoutMs ?? SIM_REQUEST_TIMEOUT_MS_DEFAULT).then(() => {
        if (this.#pending.delete(id)) reject(new FedmeshError('rpc-timeout', `rpc on ${channel} timed out`))
      })
      this.#send(toHex(peer), { kind: 'request', name: channel, id, bytes })
    })
  }

  onRequest (channel: string, handler: RequestHandler): () => void {
    this.#requestHandlers.set(channel, handler)
    return () => { if (this.#requestHandlers.get(channel) === handler) this.#requestHandlers.delete(channel) }
  }

  send (peer: Uint8Array, channel: string, bytes: Uint8Array): void {
    this.#send(toHex(peer), { kind: 'message', name: channel, bytes })
  }

  onMessage (channel: string, handler: MessageHandler): () => void {
    this.#messageHandlers.set(channel, handler)
    return () => { if (this.#messageHandlers.get(channel) === handler) this.#messageHandlers.delete(channel) }
  }

  /** Addresses in the simulated world are keys (hex); dialing one that is not on the network fails. */
  async dial (addresses: string[]): Promise<void> {
    if (!addresses.some((a) => this.#net.isAttached(a))) throw new FedmeshError('dial-failed', `no endpoint at ${addresses.join(', ')}`)
  }

  /** Endpoints on the network that this one can reach now (a partition hides them). */
  connectedPeers (): Uint8Array[] {
    return [...this.#peers()].map(fromHex)
  }

  async hangUp (_peer: Uint8Array): Promise<void> {}

  /** The node is gone (stopped or killed): off the network, pending requests never answered. */
  close (): void {
    if (this.#closed) return
    this.#closed = true
    this.#detach()
    for (const unsubscribe of this.#unsubscribe.values()) unsubscribe()
  }

  * #peers (): Iterable<string> {
    for (const address of this.#net.addresses()) if (address !== this.address && !this.#net.isBlocked(this.address, address)) yield address
  }

  #send (to: string, packet: SimPacket): void {
    if (this.#closed) return
    for (const out of this.outbound === undefined ? [packet] : this.outbound(to, packet)) this.#net.send(this.address, to, out)
  }

  #receive (from: string, arrived: SimPacket): void {
    if (this.#closed) return
    const packet = this.inbound === undefined ? arrived : this.inbound(from, arrived)
    if (packet === undefined) return
    const fromKey = fromHex(from)
    switch (packet.kind) {
      case 'topic': {
        const handler = this.#topicHandlers.get(packet.name)
        if (handler === undefined) { this.stats.unhandled++; return }
        // gossipsub treats a validator that throws as 'ignore'.
        let verdict: Verdict = 'ignore'
        try {
          verdict = handler(fromKey, Uint8Array.from(packet.bytes))
        } catch (err) {
          this.#handlerFailed(err)
        }
        this.stats.verdicts[verdict]++
        return
      }
      case 'message': {
        const handler = this.#messageHandlers.get(packet.name)
        if (handler === undefined) { this.stats.unhandled++; return }
        try {
          handler(fromKey, Uint8Array.from(packet.bytes))
        } catch (err) {
          this.#handlerFailed(err)
        }
        return
      }
      case 'request': {
        const handler = this.#requestHandlers.get(packet.name)
        // Called inside an async function: a handler that throws at once is refused like one that rejects.
        const reply = (async () => {
          if (handler === undefined) throw new FedmeshError('rpc-no-handler', `no handler for channel ${packet.name}`)
          return await handler(fromKey, Uint8Array.from(packet.bytes))
        })()
        reply.then(
          (bytes) => this.#send(from, { kind: 'reply', id: packet.id, bytes }),
          (err: unknown) => {
            this.stats.refused++
            if (!(err instanceof FedmeshError)) this.#handlerFailed(err)
            this.#send(from, { kind: 'refusal', id: packet.id, code: err instanceof FedmeshError ? err.code : 'rpc-handler-failed', message: String((err as Error).message).slice(0, 512) })
          })
        return
      }
      case 'reply':
      case 'refusal': {
        const pending = this.#pending.get(packet.id)
        if (pending === undefined || pending.peer !== from) return
        this.#pending.delete(packet.id)
        if (packet.kind === 'reply') pending.resolve(Uint8Array.from(packet.bytes))
        else pending.reject(new FedmeshError(packet.code, `remote refused: ${packet.message}`))
      }
    }
  }

  #handlerFailed (err: unknown): void {
    this.stats.handlerErrors++
    this.onHandlerError?.(err)
  }
}

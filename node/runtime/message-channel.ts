import type { Libp2p, PeerId, Stream } from '@libp2p/interface'
import { messageStreamToDuplex } from '@libp2p/utils'
import { pipe } from 'it-pipe'
import * as lp from 'it-length-prefixed'
import type { Clock } from '../../base/clock.js'
import { peerIdOf } from './key-file.js'
import { toHex } from '../../base/bytes.js'
import type { Logger } from '../../base/log.js'
import type { MessageHandler } from '../../base/transport.js'

// One-way messages on a dedicated protocol (/fedmesh/<channel>/1.0.0) for protocols that tolerate
// loss, such as Raft: one long-lived outbound stream per peer, opened lazily and re-opened after a
// failure, carrying unsigned-varint length-prefixed frames. Sends never block: each peer has a
// bounded queue that drops when full (and while a failed peer is in back-off), and every drop is
// counted. Frames carry no signature: the sender is the connection's Noise-authenticated peer key,
// which the handler receives; authorising that key (e.g. "is it in my Raft group") is its job.

export type DropReason = 'queue-full' | 'oversize' | 'unreachable' | 'backoff' | 'peers-full' | 'handler-error'

export interface MessageChannelInit {
  libp2p: Libp2p
  channel: string
  logger: Logger
  clock: Clock
  frameBytesMax: number
  queueFramesMax?: number
  queueBytesMax?: number
  peersMax?: number
  dialTimeoutMs?: number
  /** After a failed dial or stream, sends to that peer are dropped for this long. */
  backoffMs?: number
}

interface Outbox {
  queue: Uint8Array[]
  queuedBytes: number
  wake?: () => void
  active: boolean
  closed: boolean
  retryAtMs: number
}

const CHANNEL_NAME = /^[a-z0-9-]{1,32}$/
const INBOUND_STREAMS_MAX = 32

export function channelProtocol (channel: string): string {
  if (!CHANNEL_NAME.test(channel)) throw new RangeError(`channel names are 1-32 [a-z0-9-], got '${channel}'`)
  return `/fedmesh/${channel}/1.0.0`
}

export class MessageChannel {
  readonly protocol: string
  readonly dropped: Record<DropReason, number> = { 'queue-full': 0, oversize: 0, unreachable: 0, backoff: 0, 'peers-full': 0, 'handler-error': 0 }
  readonly #init: Required<MessageChannelInit>
  readonly #outboxes = new Map<string, Outbox>()
  #handler: MessageHandler | undefined
  #stopped = false

  constructor (init: MessageChannelInit) {
    this.protocol = channelProtocol(init.channel)
    this.#init = { queueFramesMax: 1024, queueBytesMax: 32 * 1024 * 1024, peersMax: 256, dialTimeoutMs: 2_000, backoffMs: 250, ...init }
  }

  /** Queues bytes for peer (its ed25519 public key); drops them (counted) rather than wait. */
  send (peer: Uint8Array, bytes: Uint8Array): void {
    if (this.#stopped) return
    if (bytes.length > this.#init.frameBytesMax) return this.#drop('oversize')
    const key = toHex(peer)
    let out = this.#outboxes.get(key)
    if (out === undefined) {
      if (this.#outboxes.size >= this.#init.peersMax) this.#evictIdle()
      if (this.#outboxes.size >= this.#init.peersMax) return this.#drop('peers-full')
      out = { queue: [], queuedBytes: 0, active: false, closed: false, retryAtMs: 0 }
      this.#outboxes.set(key, out)
    }
    if (!out.active && this.#init.clock.monotonicMs() < out.retryAtMs) return this.#drop('backoff')
    if (out.queue.length >= this.#init.queueFramesMax || out.queuedBytes + bytes.length > this.#init.queueBytesMax) return this.#drop('queue-full')
    out.queue.push(bytes)
    out.queuedBytes += bytes.length
    if (out.active) out.wake?.()
    else void this.#run(peer, out)
  }

  /** Registers the inbound handler (one per channel) and the libp2p protocol behind it. */
  async listen (handler: MessageHandler): Promise<() => Promise<void>> {
    this.#handler = handler
    await this.#init.libp2p.handle(this.protocol, (stream, connection) => {
      void this.#receive(stream, connection.remotePeer)
    }, { maxInboundStreams: INBOUND_STREAMS_MAX })
    return async () => {
      this.#handler = undefined
      await this.#init.libp2p.unhandle(this.protocol)
    }
  }

  stop (): void {
    this.#stopped = true
    for (const out of this.#outboxes.values()) {
      out.closed = true
      out.wake?.()
    }
    this.#outboxes.clear()
  }

  // Holds one stream open to peer and writes queued frames until it fails or the channel stops.
  async #run (peer: Uint8Array, out: Outbox): Promise<void> {
    out.active = true
    try {
      const stream = await this.#init.libp2p.dialProtocol(peerIdOf(peer), this.protocol, { signal: AbortSignal.timeout(this.#init.dialTimeoutMs) })
      await pipe(framedBatches(out), messageStreamToDuplex(stream).sink)
    } catch (err) {
      this.#init.logger.debug({ channel: this.#init.channel, peer: toHex(peer), err: (err as Error).message }, 'message stream failed')
      out.retryAtMs = this.#init.clock.monotonicMs() + this.#init.backoffMs
      for (let i = 0; i < out.queue.length; i++) this.#drop('unreachable')
      out.queue = []
      out.queuedBytes = 0
    } finally {
      out.active = false
    }
  }

  async #receive (stream: Stream, remote: PeerId): Promise<void> {
    const from = remote.publicKey?.raw
    if (from === undefined || from.length !== 32) {
      stream.abort(new Error('peer has no ed25519 key'))
      return
    }
    try {
      await pipe(messageStreamToDuplex(stream).source, (s) => lp.decode(s, { maxDataLength: this.#init.frameBytesMax }), async (source) => {
        for await (const frame of source) {
          try {
            this.#handler?.(from, frame.subarray())
          } catch (err) {
            this.#drop('handler-error')
            this.#init.logger.warn({ channel: this.#init.channel, err: (err as Error).message }, 'message handler failed')
          }
        }
      })
    } catch (err) {
      this.#init.logger.debug({ channel: this.#init.channel, peer: remote.toString(), err: (err as Error).message }, 'inbound message stream failed')
      stream.abort(err as Error)
    }
  }

  #drop (reason: DropReason): void {
    this.dropped[reason]++
  }

  #evictIdle (): void {
    for (const [key, out] of this.#outboxes) {
      if (!out.active) {
        this.#outboxes.delete(key)
        return
      }
    }
  }
}

/** A write gathers queued frames up to this size: one stream write (yamux frame, Noise message, syscall) for many frames. */
const BATCH_BYTES_MAX = 256 * 1024

// Yields everything queued as one buffer of length-prefixed frames (the receiver's lp.decode splits
// them again): sending frame by frame cost one socket write per Raft message, the leader's top CPU cost.
async function * framedBatches (out: Outbox): AsyncGenerator<Uint8Array> {
  while (!out.closed) {
    if (out.queue.length === 0) {
      await new Promise<void>((resolve) => { out.wake = resolve })
      out.wake = undefined
      continue
    }
    let count = 0
    let size = 0
    for (const frame of out.queue) {
      const framed = varintLength(frame.length) + frame.length
      if (count > 0 && size + framed > BATCH_BYTES_MAX) break
      count++
      size += framed
    }
    const batch = new Uint8Array(size)
    let offset = 0
    for (const frame of out.queue.splice(0, count)) {
      offset = writeVarint(frame.length, batch, offset)
      batch.set(frame, offset)
      offset += frame.length
      out.queuedBytes -= frame.length
    }
    yield batch
  }
}

/** Unsigned LEB128 (the varint it-length-prefixed reads). */
function varintLength (n: number): number {
  let length = 1
  while (n >= 0x80) { n = Math.floor(n / 128); length++ }
  return length
}

function writeVarint (n: number, into: Uint8Array, offset: number): number {
  while (n >= 0x80) {
    into[offset++] = (n % 128) | 0x80
    n = Math.floor(n / 128)
  }
  into[offset++] = n
  return offset
}

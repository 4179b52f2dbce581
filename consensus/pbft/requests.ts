import assert from 'node:assert/strict'
import { bytesEqual } from '../../base/bytes.js'
import { type ClientRequest, type PrePrepare, type Reply, type Signed, batchDigest } from './messages.js'

// Client requests at a replica: the ones waiting to be ordered, in the order a correct primary
// proposes them, which of those a pre-prepare of this view already holds, the batch limits every
// replica checks a pre-prepare against, and the last reply to each client.

/** A request waiting here: since when, and how many batches a correct primary orders before (and with) it. */
export interface PendingRequest { request: ClientRequest, sinceTick: number, batchesAhead: number, forwarded: boolean }

/** A request's share of a batch on the wire (op, client id, timestamp and framing). */
export function requestBytes (r: ClientRequest): number {
  return r.op.length + r.client.length + 16
}

export function requestKey (r: ClientRequest): string {
  return `${r.client}\u0000${r.timestamp}`
}

export class RequestQueue {
  readonly batchMax: number
  readonly batchBytesMax: number
  readonly #pendingMax: number
  /** By client, in arrival order (a replacement moves to the back). */
  readonly #pending = new Map<string, PendingRequest>()
  #pendingBytes = 0
  readonly #assigned = new Set<string>()

  constructor (limits: { batchMax: number, batchBytesMax: number, pendingMax: number }) {
    this.batchMax = limits.batchMax
    this.batchBytesMax = limits.batchBytesMax
    this.#pendingMax = limits.pendingMax
  }

  get size (): number {
    return this.#pending.size
  }

  isFull (): boolean {
    return this.#pending.size >= this.#pendingMax
  }

  get (client: string): PendingRequest | undefined {
    return this.#pending.get(client)
  }

  /** The request waiting longest. */
  oldest (): PendingRequest | undefined {
    return this.#pending.values().next().value
  }

  waiting (): IterableIterator<PendingRequest> {
    return this.#pending.values()
  }

  /**
   * Queues r (replacing its client's older request) at the back: a client cannot hold a place
   * ahead of others, nor age a request, by replacing it.
   */
  add (r: ClientRequest, nowTick: number): void {
    this.#remove(r.client)
    this.#pending.set(r.client, { request: r, sinceTick: nowTick, batchesAhead: this.#batchesAhead(r), forwarded: false })
    this.#pendingBytes += requestBytes(r)
  }

  /** A batch executed: its requests, and older ones of their clients, are no longer waiting. */
  executed (requests: ClientRequest[]): void {
    for (const r of requests) {
      this.#assigned.delete(requestKey(r))
      const p = this.#pending.get(r.client)?.request
      if (p !== undefined && p.timestamp <= r.timestamp) {
        this.#remove(r.client)
        this.#assigned.delete(requestKey(p))
      }
    }
  }

  clear (): void {
    this.#pending.clear()
    this.#pendingBytes = 0
    this.#assigned.clear()
  }

  assign (r: ClientRequest): void {
    this.#assigned.add(requestKey(r))
  }

  isAssigned (r: ClientRequest): boolean {
    return this.#assigned.has(requestKey(r))
  }

  /** A new view: its pre-prepares assign requests afresh. */
  clearAssigned (): void {
    this.#assigned.clear()
  }

  unassigned (): ClientRequest[] {
    return [...this.#pending.values()].map((p) => p.request).filter((r) => !this.isAssigned(r))
  }

  /** Takes the next batch off the front of queue, greedily up to the count and byte limits, and assigns it. */
  takeBatch (queue: ClientRequest[]): ClientRequest[] {
    const batch: ClientRequest[] = []
    let bytes = 0
    while (batch.length < this.batchMax && queue.length > 0 && bytes + requestBytes(queue[0]!) <= this.batchBytesMax) {
      const r = queue.shift()!
      bytes += requestBytes(r)
      batch.push(r)
      this.assign(r)
    }
    return batch
  }

  fits (r: ClientRequest): boolean {
    return requestBytes(r) <= this.batchBytesMax
  }

  /** Within the batch limits, its digest right, one request per client. */
  validBatch (pp: PrePrepare): boolean {
    if (pp.batch.length > this.batchMax || !bytesEqual(pp.digest, batchDigest(pp.batch))) return false
    const clients = new Set<string>()
    let bytes = 0
    for (const r of pp.batch) {
      if (clients.has(r.client)) return false
      clients.add(r.client)
      bytes += requestBytes(r)
    }
    return bytes <= this.batchBytesMax
  }

  /**
   * Batches a correct primary proposes before the one holding a request that arrives now, that one
   * included. It proposes in arrival order, filling each batch greedily: a batch is full by count
   * (batchMax of the requests ahead), or the request after it did not fit its bytes, so such a batch
   * and that next request (counted at most twice over all batches) hold more than batchBytesMax.
   */
  #batchesAhead (r: ClientRequest): number {
    return Math.floor(this.#pending.size / this.batchMax) + Math.floor((2 * this.#pendingBytes + requestBytes(r)) / this.batchBytesMax) + 1
  }

  #remove (client: string): void {
    const p = this.#pending.get(client)
    if (p === undefined) return
    this.#pending.delete(client)
    this.#pendingBytes -= requestBytes(p.request)
    assert.ok(this.#pendingBytes >= 0 && (this.#pending.size > 0 || this.#pendingBytes === 0), 'pending bytes track the pending requests')
  }
}

/** The last reply to each client, re-sent to a retrying client (never re-executed); the least recently answered client goes first. */
export class ReplyCache {
  readonly #max: number
  readonly #replies = new Map<string, Signed<Reply>>()

  constructor (clientsMax: number) {
    this.#max = clientsMax
  }

  last (client: string): Signed<Reply> | undefined {
    return this.#replies.get(client)
  }

  remember (reply: Signed<Reply>): void {
    const { client } = reply.body
    this.#replies.delete(client)
    this.#replies.set(client, reply)
    if (this.#replies.size > this.#max) this.#replies.delete(this.#replies.keys().next().value!)
  }
}

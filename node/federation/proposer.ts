import { type PbftMessage, type VerifyFn, PBFT_OP_BYTES_MAX, ReplyCollector, faultsTolerated } from '../../consensus/pbft/index.js'
import { decodeCanonical, encodeCanonical } from '../../base/codec.js'
import { fromHex, toHex } from '../../base/bytes.js'
import { TaskError } from '../org/task-commands.js'
import { KIND_REQUEST, type PbftEnvelopes } from './envelopes.js'
import type { FederationEpochs } from './epochs.js'
import { FederationError } from './errors.js'
import type { FederationInit } from './federation-init.js'
import { type FederationOp, clientPrefix, signOp } from './ops.js'
import { type FederationConfig, instanceId } from './config.js'
import { type Outcome, type RequestResult } from './state.js'

// The client side of the federation on this node: each request is an op signed by this node, sent
// to every replica until f+1 orgs reply the same result, with backoff, and re-submitted into the
// next epoch when a membership change ended the one it was ordered in — or began while it waited
// for an answer (the old epoch's replicas retire). It keeps one client id throughout: the
// federation state remembers executed clients across epochs, so it is applied at most once.

const PENDING_PROPOSALS_MAX = 1024
const PROPOSE_TIMEOUT_MS_DEFAULT = 30_000
/** A request answered 'epoch-ended' is re-submitted into the next epoch at most this many times. */
const EPOCH_RETRIES_MAX = 3

export interface FederationReceipt {
  /** The epoch, PBFT sequence number and position in its batch: the same in every org. */
  epoch: number
  seq: number
  position: number
  /** applied (task), recorded (anchor), approved / passed (vote), or refused with a reason. */
  outcome: Outcome
  reason: string
  /** False when the decided operation was refused (alike by every org). */
  accepted: boolean
}

export interface ProposerInit extends Pick<FederationInit, 'signer' | 'certificate' | 'org' | 'orgRoot' | 'clock' | 'rng' | 'orgLeader'> {
  tickMs: number
  viewChangeTimeoutMs: number
  epochs: FederationEpochs
  envelopes: PbftEnvelopes
  /** Hands a request to this org's replica of instance, if this node hosts it. */
  proposeLocally: (instance: string, op: Uint8Array, id: { client: string, seq: number }) => void
}

interface Pending { instance: string, collector: ReplyCollector, resolve: (result: Uint8Array) => void }

export class Proposer {
  readonly #init: ProposerInit
  readonly #clientPrefix: string
  readonly #verify: VerifyFn
  readonly #pending = new Map<string, Pending>()
  #requests = 0
  #stopped = false

  constructor (init: ProposerInit) {
    this.#init = init
    this.#clientPrefix = `${clientPrefix(init.orgRoot, init.signer.publicKey)}${toHex(init.rng.bytes(8))}`
    this.#verify = init.envelopes.verify
  }

  stop (): void {
    this.#stopped = true
  }

  async request (op: FederationOp, options: { timeoutMs?: number }): Promise<FederationReceipt> {
    const init = this.#init
    if (this.#pending.size >= PENDING_PROPOSALS_MAX) throw new FederationError('federation-busy', `${PENDING_PROPOSALS_MAX} federation requests in flight`)
    if (!init.epochs.isMember(init.orgRoot)) throw new FederationError('not-a-member', `org ${init.org} is not a member of federation epoch ${init.epochs.current.epoch} (revoked)`)
    const deadlineMs = init.clock.monotonicMs() + (options.timeoutMs ?? PROPOSE_TIMEOUT_MS_DEFAULT)
    const client = `${this.#clientPrefix}.${++this.#requests}`
    for (let attempt = 0; ; attempt++) {
      const result = await this.#requestIn(init.epochs.current, client, op, deadlineMs)
      if (result === undefined) continue
      if (result.outcome !== 'epoch-ended' || attempt >= EPOCH_RETRIES_MAX) return { ...result, accepted: isAccepted(result.outcome) }
      // Ordered after a membership change: every org refused it alike; try again in the next epoch.
      while (init.epochs.current.epoch < result.epoch) {
        if (this.#stopped || init.clock.monotonicMs() >= deadlineMs) throw new FederationError('federation-timeout', 'the federation changed epoch and this node has not seen the new one yet')
        await init.clock.sleep(init.tickMs)
      }
    }
  }

  /** A reply for one of this node's clients: counted towards its f+1. False if `client` is not one waiting here. */
  deliver (client: string, m: PbftMessage): boolean {
    const pending = this.#pending.get(client)
    if (pending === undefined) return false
    const result = pending.collector.add(m)
    if (result !== undefined) pending.resolve(result)
    return true
  }

  /** A reply that came over the wire for the clients in `to`, from the replica of instance. */
  received (instance: string, to: string[], m: PbftMessage): void {
    for (const client of to) if (this.#pending.get(client)?.instance === instance) this.deliver(client, m)
  }

  /** The node hosting this org's replica (its Raft leader): another node's key, 'self' (proposeLocally hands it over), or undefined if unknown. */
  #orgHost (): Uint8Array | 'self' | undefined {
    const leader = this.#init.orgLeader?.()
    if (leader === undefined) return undefined
    return leader === toHex(this.#init.signer.publicKey) ? 'self' : fromHex(leader)
  }

  /** The result of the request in the epoch of config; undefined once this node entered a later epoch unanswered. */
  async #requestIn (config: FederationConfig, client: string, op: FederationOp, deadlineMs: number): Promise<RequestResult | undefined> {
    const init = this.#init
    const instance = instanceId(config)
    const opBytes = signOp(init.signer, init.certificate, { instance, client, timestamp: 1 }, op)
    if (opBytes.length > PBFT_OP_BYTES_MAX) throw new TaskError('task-invalid', `operation of ${opBytes.length} bytes exceeds ${PBFT_OP_BYTES_MAX}`)
    const request = encodeCanonical([client, 1, opBytes])
    const replicas = config.orgs.map((o) => o.root)
    const answered = new Promise<Uint8Array>((resolve) => {
      const collector = new ReplyCollector(client, 1, faultsTolerated(replicas.length), new Map(replicas.map((r) => [r, fromHex(r)])), this.#verify)
      this.#pending.set(client, { instance, collector, resolve })
    })
    // Backing off from one view-change timeout (the time a correct federation may take to order it,
    // a view change included): under load, earlier retries of every pending request multiplied the
    // load that delayed them (each one re-verified by every node) until throughput collapsed.
    let retryMs = Math.max(100, init.viewChangeTimeoutMs)
    const retryMsMax = 4 * init.viewChangeTimeoutMs
    let answer: Uint8Array | undefined
    void answered.then((a) => { answer = a })
    try {
      // Gossip may not reach every replica at once (a mesh still forming, a new org leader): resend
      // until answered, in a fresh envelope each time (the replay guard drops a repeated one);
      // replicas answer a retry from their reply cache, and the federation state applies a client once.
      for (let attempt = 0; answer === undefined; attempt++) {
        if (this.#stopped) throw new FederationError('federation-stopped', 'the node is stopping')
        init.proposeLocally(instance, opBytes, { client, seq: 1 })
        // The first send reaches every replica (all of them watch the primary order it). A resend
        // goes to the org's own host, which forwards it to the primary if still unordered: gossiped
        // again, every pending request would be re-verified by every node, which under load
        // multiplied the load that delayed them (4 × 3 collapsed at C=256). Every fourth resend
        // gossips again, in case the first one reached too few replicas.
        const host = attempt % 4 === 0 ? undefined : this.#orgHost()
        if (host instanceof Uint8Array) init.envelopes.sendTo(host, init.envelopes.seal(instance, KIND_REQUEST, [], request))
        else if (host === undefined) await init.envelopes.publish(init.envelopes.seal(instance, KIND_REQUEST, [], request))
        await Promise.race([answered, init.clock.sleep(retryMs)])
        retryMs = Math.min(2 * retryMs, retryMsMax)
        if (answer !== undefined) break
        if (init.epochs.current.epoch > config.epoch) return undefined
        if (init.clock.monotonicMs() >= deadlineMs) throw new FederationError('federation-timeout', 'no f+1 matching replies in time')
      }
      return decodeResult(answer)
    } finally {
      this.#pending.delete(client)
    }
  }
}

const ACCEPTED = new Set<Outcome>(['applied', 'recorded', 'approved', 'passed'])

/** Whether an outcome means the operation took effect (alike in every org). */
export function isAccepted (outcome: Outcome): boolean {
  return ACCEPTED.has(outcome)
}

export function decodeResult (bytes: Uint8Array): RequestResult {
  const v = decodeCanonical(bytes, () => new FederationError('malformed', 'undecodable federation result'))
  if (!Array.isArray(v) || v.length !== 5) throw new FederationError('malformed', 'a federation result holds [epoch, seq, position, outcome, reason]')
  const [epoch, seq, position, outcome, reason] = v as [number, number, number, Outcome, string]
  return { epoch, seq, position, outcome, reason }
}

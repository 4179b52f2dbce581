import assert from 'node:assert/strict'
import { bytesEqual } from '../../base/bytes.js'
import type { Signer } from '../../base/ed25519.js'
import { verify as ed25519Verify } from '../../base/ed25519.js'
import { type PbftMessage, PBFT_BATCH_MAX, PBFT_ID_LENGTH_MAX, PBFT_MESSAGE_BYTES_MAX, PBFT_OP_BYTES_MAX, PBFT_REPLICAS_MAX, PBFT_WINDOW_MAX } from './messages.js'
import type { VerifyFn } from './authentication.js'
import type { StableCheckpoint } from './outbox.js'
import { faultsTolerated, quorumSize } from './view-change.js'

// A replica's configuration, checked, with its defaults and the limits derived from the wire bound.

export interface PbftRestore {
  /** Every promise persisted so far (from the last stable checkpoint on), in Ready order. */
  promises: PbftMessage[]
  stable?: StableCheckpoint
  /** Sequence number the application state reflects (>= stable.seq). */
  executedSeq: number
}

export interface PbftConfig {
  id: string
  /** Replica ids in a fixed order shared by all: the primary of view v is replicas[v mod n]. */
  replicas: readonly string[]
  publicKeys: ReadonlyMap<string, Uint8Array>
  signer: Signer
  verify?: VerifyFn
  /** K: a checkpoint every K sequence numbers. */
  checkpointInterval?: number
  /** L: the high watermark is the stable checkpoint + L (a multiple of K). */
  logWindow?: number
  batchMax?: number
  /**
   * The primary orders a request at once when nothing it ordered is still unexecuted, instead of at
   * the next tick (lower latency when idle; under load batches still fill between ticks).
   */
  proposeWhenIdle?: boolean
  /** Bytes of requests in one batch; derived from the message size bound by default. */
  batchBytesMax?: number
  /** Ticks a replica waits for progress on a known request before voting for the next view. */
  requestTimeoutTicks?: number
  pendingRequestsMax?: number
  /** Clients whose last reply is cached (re-sent to a retrying client, never re-executed). */
  clientsMax?: number
  futureMessagesMax?: number
  restore?: PbftRestore
  /**
   * Test-only bugs, so tests can prove the simulator's checkers catch them. quorum2fPlus1: every
   * certificate takes 2f+1 replicas, the n = 3f+1 quorum, too few once n > 3f+1 (two such quorums
   * may share only a faulty replica). noRequestAgeBound: only the classic progress timer, so a primary
   * that keeps ordering others' requests can censor one forever.
   */
  unsafe?: { commitQuorumFPlus1?: boolean, trustNewViewO?: boolean, quorum2fPlus1?: boolean, noRequestAgeBound?: boolean }
}

/** A checked PbftConfig with every default filled in. */
export interface PbftSettings {
  f: number
  /** Replicas in a quorum: quorumSize(n), unless a test-only bug says otherwise. */
  quorumSize: number
  verify: VerifyFn
  checkpointInterval: number
  logWindow: number
  batchMax: number
  batchBytesMax: number
  proposeWhenIdle: boolean
  requestTimeoutTicks: number
  pendingRequestsMax: number
  clientsMax: number
  futureMessagesMax: number
  unsafe: NonNullable<PbftConfig['unsafe']>
}

/** Wire bytes of a signed vote beyond its batch: sender id, signature, digest, numbers, framing. */
const SIGNED_MESSAGE_OVERHEAD_BYTES = PBFT_ID_LENGTH_MAX + 64 + 32 + 48

export function pbftSettings (config: PbftConfig): PbftSettings {
  const n = config.replicas.length
  // Below 4 no Byzantine fault is tolerated (f = 0) but crashes still are (q = 2 of 3): a federation
  // that revoked members down to 3 keeps running.
  assert.ok(n >= 3 && n <= PBFT_REPLICAS_MAX, `PBFT needs 3..${PBFT_REPLICAS_MAX} replicas`)
  assert.equal(new Set(config.replicas).size, n, 'replica ids must be distinct')
  assert.ok(config.replicas.includes(config.id), 'this replica is not in the replica set')
  for (const r of config.replicas) assert.equal(config.publicKeys.get(r)?.length, 32, `no ed25519 key for replica ${r}`)
  assert.ok(bytesEqual(config.signer.publicKey, config.publicKeys.get(config.id)!), 'signer key is not this replica\'s key')
  const f = faultsTolerated(n)
  const k = config.checkpointInterval ?? 16
  const l = config.logWindow ?? 2 * k
  assert.ok(k >= 1 && l % k === 0 && l >= 2 * k && l <= PBFT_WINDOW_MAX, 'log window must be a multiple (>= 2) of the checkpoint interval')
  const unsafe = config.unsafe ?? {}
  const size = unsafe.quorum2fPlus1 === true ? 2 * f + 1 : quorumSize(n)
  // The largest message is a NewView: up to n view changes with up to L prepared certificates
  // each (a batch and a quorum of signed messages), plus O. It must fit the wire bound, or a view
  // change could never be sent: the batch size is derived from that unless configured (then checked).
  const batchBytesFit = viewChangeBatchBytes(n, size, l)
  const batchBytesMax = Math.min(config.batchBytesMax ?? Math.min(16 * 1024, batchBytesFit), PBFT_OP_BYTES_MAX)
  assert.ok(batchBytesMax >= 1024 && batchBytesMax <= batchBytesFit, `a view change would exceed ${PBFT_MESSAGE_BYTES_MAX} bytes: lower the log window or the batch size`)
  const requestTimeoutTicks = config.requestTimeoutTicks ?? 20
  assert.ok(requestTimeoutTicks >= 2, 'request timeout must be at least 2 ticks')
  return {
    f,
    quorumSize: size,
    verify: config.verify ?? ed25519Verify,
    checkpointInterval: k,
    logWindow: l,
    batchMax: Math.min(config.batchMax ?? 64, PBFT_BATCH_MAX),
    batchBytesMax,
    proposeWhenIdle: config.proposeWhenIdle ?? false,
    requestTimeoutTicks,
    pendingRequestsMax: config.pendingRequestsMax ?? 4096,
    clientsMax: config.clientsMax ?? 10_000,
    futureMessagesMax: config.futureMessagesMax ?? 16 * n * l,
    unsafe
  }
}

/** The batch bytes that keep a NewView within the wire bound, for n replicas, quorum q and log window L. */
function viewChangeBatchBytes (n: number, q: number, logWindow: number): number {
  return Math.floor(PBFT_MESSAGE_BYTES_MAX / ((n + 1) * logWindow)) - SIGNED_MESSAGE_OVERHEAD_BYTES * (q + 1)
}

/** Whether n replicas can run with checkpoint interval K (and the default log window 2K): a view change must fit the wire. */
export function checkpointIntervalFits (n: number, checkpointInterval: number): boolean {
  return viewChangeBatchBytes(n, quorumSize(n), 2 * checkpointInterval) >= 1024
}

import assert from 'node:assert/strict'
import { decodeCanonical, encodeCanonical } from '../../../base/codec.js'
import { CatchUp, KIND_BATCHES, type CatchUpInit } from '../../../node/federation/catch-up.js'
import type { FederationOp } from '../../../node/federation/ops.js'
import { type BatchRequest, FederationState } from '../../../node/federation/state.js'
import { systemClock } from '../../../node/runtime/system-clock.js'
import { configOf, makeOrg, signedRequest, taskOp } from '../../helpers/federation-ops.js'
import { generateIdentity } from '../../../node/runtime/key-file.js'

// A replica behind a stable checkpoint catches up: from the batches a host kept (replayed on a copy
// of its state and checked against the checkpoint's certified digest before anything is applied),
// or, when nobody kept them, from the state core at the checkpoint.
describe('federation catch-up past a stable checkpoint', () => {
  const K = 4
  const orgs = ['alpha', 'bravo', 'charlie', 'delta'].map(makeOrg)
  const genesis = 'cd'.repeat(16)
  const config = configOf(genesis, orgs)
  const [hostNode, laggardNode] = [generateIdentity(), generateIdentity()]

  interface SetUp {
    /** The batch ordered at seq (one task each by default). */
    requestsAt?: (seq: number) => BatchRequest[]
    /** A lying host: the batches it sends are not the ones its org applied. */
    tamper?: (seq: number, requests: BatchRequest[]) => BatchRequest[]
    laggardSeq?: number
    /** Whether the host's answer reaches the laggard. */
    deliver?: (kind: number, payload: Uint8Array) => boolean
  }

  /** Batches 1..8 applied by the host's org, 1..laggardSeq on the laggard; the certified digest at checkpoint 8. */
  function setUp ({ requestsAt = (seq) => [signedRequest(orgs[seq % 4]!, genesis, taskOp(`t${seq}`))], tamper, laggardSeq = 2, deliver = () => true }: SetUp = {}): {
    host: CatchUp, hostState: FederationState, laggard: CatchUp, laggardState: FederationState, applied: number[], installed: Uint8Array[], digest: Uint8Array, batches: BatchRequest[][]
  } {
    const hostState = new FederationState(config)
    const laggardState = new FederationState(config)
    const applied: number[] = []
    const installed: Uint8Array[] = []
    const base = { clock: systemClock, checkpointInterval: K, retryMs: 10, hosting: () => true, batchesWaitMs: 200, coreWaitMs: 200, initial: () => new FederationState(config) }
    let host: CatchUp
    const laggard: CatchUp = new CatchUp({
      ...base,
      publish: (instance, kind, payload) => host.receive(instance, orgs[1]!.root.publicKeyHex, laggardNode.publicKey, kind, payload),
      sendTo: () => assert.fail('the laggard answers nobody'),
      // Like the org's board: no federation state until it applied a first batch.
      state: () => laggardState.lastSeq === 0 ? undefined : laggardState,
      apply: async (instance, seq, requests) => { applied.push(seq); laggardState.apply({ config, instance, seq, requests, checkpoint: seq % K === 0 }) },
      install: async (instance, core) => { installed.push(core); laggardState.installCore(instance, core) }
    } satisfies CatchUpInit)
    host = new CatchUp({
      ...base,
      publish: () => undefined,
      sendTo: (_node, instance, kind, payload) => { if (deliver(kind, payload)) laggard.receive(instance, orgs[0]!.root.publicKeyHex, hostNode.publicKey, kind, kind === KIND_BATCHES && tamper !== undefined ? tampered(payload, tamper) : payload) },
      state: () => hostState,
      apply: async () => assert.fail('the host applies nothing'),
      install: async () => assert.fail('the host installs nothing')
    })
    let digest: Uint8Array = new Uint8Array()
    const batches: BatchRequest[][] = []
    for (let seq = 1; seq <= 8; seq++) {
      const requests = requestsAt(seq)
      batches.push(requests)
      const out = hostState.apply({ config, instance: genesis, seq, requests, checkpoint: seq % K === 0 })
      if (seq % K === 0) host.retainCore(genesis, seq, hostState.exportCore())
      if (seq <= laggardSeq) laggardState.apply({ config, instance: genesis, seq, requests, checkpoint: false })
      if (out.digest !== undefined) digest = out.digest
    }
    return { host, hostState, laggard, laggardState, applied, installed, digest, batches }
  }

  it('replays the missing batches, checked against the certified digest, then applies them', async () => {
    const { laggard, laggardState, applied, installed, digest } = setUp()
    assert.equal(await laggard.fetch(genesis, 8, digest), true)
    assert.deepEqual(applied, [3, 4, 5, 6, 7, 8])
    assert.equal(installed.length, 0)
    assert.equal(laggardState.lastSeq, 8)
    assert.deepEqual(laggard.stats, { replayedRanges: 1, installedCores: 0 })
  })

  it('replays from the first batch for an org that applied none yet (every task reaches its board)', async () => {
    const { laggard, laggardState, applied, installed, digest } = setUp({ laggardSeq: 0 })
    assert.equal(await laggard.fetch(genesis, 8, digest), true)
    assert.deepEqual(applied, [1, 2, 3, 4, 5, 6, 7, 8])
    assert.equal(installed.length, 0)
    assert.equal(laggardState.lastSeq, 8)
  })

  it('asks again from where its org got to when its state moves on during the wait, rather than take the core', async () => {
    // The first answer (from seq 3) is lost; meanwhile the laggard's org applies batch 3 itself (its
    // replica executing a committed batch), so the question is stale: it asks from 4 and replays.
    let lost = false
    let fixture: ReturnType<typeof setUp> | undefined
    fixture = setUp({
      deliver: (kind, payload) => {
        if (kind !== KIND_BATCHES || lost) return true
        lost = true
        const [first] = decodeCanonical(payload) as [number]
        assert.equal(first, 3)
        fixture!.laggardState.apply({ config, instance: genesis, seq: 3, requests: fixture!.batches[2]!, checkpoint: false })
        return false
      }
    })
    const { laggard, laggardState, applied, installed, digest } = fixture
    assert.equal(await laggard.fetch(genesis, 8, digest), true)
    assert.deepEqual(applied, [4, 5, 6, 7, 8])
    assert.equal(installed.length, 0)
    assert.equal(laggardState.lastSeq, 8)
  })

  it('replays across the vote that ended its epoch, up to that epoch\'s last checkpoint, and enters the next one', async () => {
    // Batch 3 passes a vote revoking delta; 4..8 were still ordered in the old instance (each answered
    // epoch-ended). A laggard at 2 must get through them all, not stop in the old epoch for good.
    const revoke: FederationOp = { kind: 'revoke', root: orgs[3]!.root.publicKeyHex }
    const { hostState, laggard, laggardState, applied, installed, digest } = setUp({
      requestsAt: (seq) => seq === 3 ? orgs.slice(0, 3).map((o) => signedRequest(o, genesis, revoke)) : [signedRequest(orgs[0]!, genesis, taskOp(`t${seq}`))]
    })
    assert.equal(hostState.config.epoch, 1)
    assert.equal(await laggard.fetch(genesis, 8, digest), true)
    assert.deepEqual(applied, [3, 4, 5, 6, 7, 8])
    assert.equal(installed.length, 0, 'no core: the batches replay to the certified digest')
    assert.equal(laggardState.config.epoch, 1, 'the laggard is in the next epoch')
  })

  it('refuses batches that do not replay to the digest and takes the certified core instead', async () => {
    const { laggard, laggardState, applied, installed, digest } = setUp({ tamper: (seq, requests) => seq === 5 ? [signedRequest(orgs[0]!, genesis, taskOp('forged'))] : requests })
    assert.equal(await laggard.fetch(genesis, 8, digest), true)
    assert.deepEqual(applied, [], 'nothing of the forged range was applied')
    assert.equal(installed.length, 1)
    assert.equal(laggardState.lastSeq, 8)
    assert.deepEqual(laggard.stats, { replayedRanges: 0, installedCores: 1 })
  })

  describe('an epoch that a vote ended while this org lagged, with no checkpoint after its seq', () => {
    // Found by the federation simulator (seed 41, 4 × 3, an admission vote): bravo's replica missed
    // the commit of the vote's batch; the others left the instance at the vote, their replicas of it
    // retired, and bravo stayed in the ended epoch for good, its view changes joined by nobody.
    const revoke: FederationOp = { kind: 'revoke', root: orgs[3]!.root.publicKeyHex }
    const batchAt = [1, 2].map((seq) => [signedRequest(orgs[seq]!, genesis, taskOp(`t${seq}`))])
    batchAt.push(orgs.slice(0, 3).map((o) => signedRequest(o, genesis, revoke)))

    /** Orgs that applied batches 1..3 (3 passed the vote) answer a laggard at 2; a liar answers with another batch 3. */
    function world (answering: number, liars = 0): { laggard: CatchUp, laggardState: FederationState, applied: number[] } {
      const laggardState = new FederationState(config)
      for (const [i, requests] of batchAt.slice(0, 2).entries()) laggardState.apply({ config, instance: genesis, seq: i + 1, requests })
      const applied: number[] = []
      const answerers: CatchUp[] = []
      const base = { clock: systemClock, checkpointInterval: K, retryMs: 10, hosting: () => true, batchesWaitMs: 300, initial: () => new FederationState(config) }
      const laggard: CatchUp = new CatchUp({
        ...base,
        publish: (instance, kind, payload) => { for (const a of answerers) a.receive(instance, orgs[3]!.root.publicKeyHex, laggardNode.publicKey, kind, payload) },
        sendTo: () => assert.fail('the laggard answers nobody'),
        state: () => laggardState,
        apply: async (instance, seq, requests) => { applied.push(seq); laggardState.apply({ config, instance, seq, requests }) },
        install: async () => assert.fail('nothing to install')
      })
      for (let i = 0; i < answering + liars; i++) {
        const state = new FederationState(config)
        const batches = i < answering ? batchAt : [...batchAt.slice(0, 2), [signedRequest(orgs[0]!, genesis, revoke), signedRequest(orgs[1]!, genesis, revoke), signedRequest(orgs[2]!, genesis, revoke)]]
        for (const [j, requests] of batches.entries()) state.apply({ config, instance: genesis, seq: j + 1, requests })
        const root = orgs[i]!.root.publicKeyHex
        answerers.push(new CatchUp({
          ...base,
          publish: () => undefined,
          sendTo: (_node, instance, kind, payload) => laggard.receive(instance, root, hostNode.publicKey, kind, payload),
          state: () => state,
          apply: async () => assert.fail('an answerer applies nothing'),
          install: async () => assert.fail('an answerer installs nothing')
        }))
      }
      return { laggard, laggardState, applied }
    }

    it('applies the batches up to the vote once f+1 orgs sent the same ones, and enters the next epoch', async () => {
      const { laggard, laggardState, applied } = world(2)
      assert.equal(await laggard.finishEnded(genesis, 1), true)
      assert.deepEqual(applied, [3])
      assert.equal(laggardState.config.epoch, 1)
    })

    it('takes no answer that fewer than f+1 orgs agree on', async () => {
      const { laggard, laggardState, applied } = world(1, 1)
      assert.equal(await laggard.finishEnded(genesis, 1), false)
      assert.deepEqual(applied, [])
      assert.equal(laggardState.config.epoch, 0)
    })
  })

  it('gives up (false) when no host holds the checkpoint', async () => {
    const { laggard } = setUp()
    assert.equal(await laggard.fetch(genesis, 12, new Uint8Array(32)), false)
  })
})

/** A batches answer [from, to, batches] with some batches swapped by the liar. */
function tampered (payload: Uint8Array, tamper: (seq: number, requests: BatchRequest[]) => BatchRequest[]): Uint8Array {
  const [from, to, bytes] = decodeCanonical(payload) as [number, number, Uint8Array]
  const batches = (decodeCanonical(bytes) as Array<Array<[string, number, Uint8Array]>>).map((b, i) =>
    tamper(from + i, b.map(([client, timestamp, op]) => ({ client, timestamp, op }))).map((r) => [r.client, r.timestamp, r.op]))
  return encodeCanonical([from, to, encodeCanonical(batches)])
}

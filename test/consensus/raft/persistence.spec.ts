import { decode } from 'cborg'
import assert from 'node:assert/strict'
import { MemoryStorage } from '../../../base/memory-storage.js'
import { RaftCore, RaftPersistence, RaftDecodeError, type RaftStorage, logKey } from '../../../consensus/raft/index.js'
import { Prng } from '../../../simulations/world/prng.js'
import { TestNetwork } from './harness.js'

const conf = { voters: ['a', 'b', 'c'], learners: [] }

function sameView (actual: RaftStorage, expected: RaftStorage): void {
  // A commit-only advance is not written (etcd's MustSync): the stored commit may trail.
  const { commit, ...rest } = actual.hardState
  assert.deepEqual(rest, { term: expected.hardState.term, vote: expected.hardState.vote })
  assert.ok(commit <= expected.hardState.commit && commit >= actual.snapshot().meta.index, `stored commit ${commit}`)
  assert.deepEqual(actual.snapshot().meta, expected.snapshot().meta)
  assert.equal(actual.firstIndex(), expected.firstIndex())
  assert.equal(actual.lastIndex(), expected.lastIndex())
  assert.deepEqual(actual.entries(actual.firstIndex(), Infinity), expected.entries(expected.firstIndex(), Infinity))
}

/** Runs a 3-node cluster and mirrors every Ready of node `id` through RaftPersistence. */
async function runMirrored (net: TestNetwork, id: string, persistence: RaftPersistence, steps: (net: TestNetwork) => void): Promise<void> {
  const core = net.core(id)
  const originalReady = core.ready.bind(core)
  const saves: Array<Promise<void>> = []
  core.ready = () => {
    const rd = originalReady()
    saves.push(persistence.save(rd))
    return rd
  }
  steps(net)
  await Promise.all(saves)
}

describe('raft: persistence', () => {
  it('round-trips hard state, entries, truncations and compaction through Storage', async () => {
    const storage = new MemoryStorage()
    const persistence = new RaftPersistence(storage, 'org1')
    await persistence.load(conf)
    const net = new TestNetwork(['a', 'b', 'c'], { snapshotEntries: 6, compactionRetainEntries: 2 })
    await runMirrored(net, 'a', persistence, (n) => {
      n.electLeader()
      const leader = n.leaders()[0]!
      for (let i = 0; i < 15; i++) n.propose(leader, `v${i}`)
      n.tick(2)
    })
    const restarted = await new RaftPersistence(storage.crash(), 'org1').load(conf)
    assert.ok(restarted.snapshot().meta.index > 1, 'a compaction snapshot was stored')
    sameView(restarted, net.core('a').storage)
    const keys: string[] = []
    for await (const [key] of storage.crash().iterate('raft/org1/log/')) keys.push(key)
    assert.equal(keys[0], logKey('org1', restarted.firstIndex()), 'compacted entries were deleted')
    assert.equal(keys.length, restarted.lastIndex() - restarted.firstIndex() + 1)
  })

  it('a restarted core resumes from storage and converges with the cluster', async () => {
    let storage = new MemoryStorage()
    const net = new TestNetwork(['a', 'b', 'c'])
    const follower = 'c'
    net.core('a').campaign()
    await runMirrored(net, follower, new RaftPersistence(storage, 'g'), (n) => {
      n.stabilize()
      for (let i = 0; i < 5; i++) n.propose('a', `v${i}`)
    })
    const leader = 'a'
    storage = storage.crash()
    const view = await new RaftPersistence(storage, 'g').load(conf)
    const core = new RaftCore({ id: follower, rng: new Prng(9), storage: view })
    assert.ok(core.status().commit <= net.core(follower).status().commit)
    assert.equal(core.status().term, net.core(leader).status().term)
  })

  it('a crash before a batch resolves loses that Ready entirely, never half of it', async () => {
    const storage = new MemoryStorage()
    const persistence = new RaftPersistence(storage, 'g')
    await persistence.load(conf)
    const entry = (index: number, term: number) => ({ term, index, type: 'normal' as const, data: new Uint8Array([index]) })
    await persistence.save({ hardState: { term: 2, vote: 'a', commit: 1 }, entries: [entry(2, 2), entry(3, 2)], messages: [], committedEntries: [], readStates: [] })
    const durable = storage.crash()
    // The second save's batch was never issued when the process died.
    const pending = persistence.save({ hardState: { term: 3, vote: 'b', commit: 2 }, entries: [entry(3, 3)], messages: [], committedEntries: [], readStates: [] })
    await pending.catch(() => {})
    const view = await new RaftPersistence(durable, 'g').load(conf)
    assert.deepEqual(view.hardState, { term: 2, vote: 'a', commit: 1 })
    assert.deepEqual(view.entries(2, Infinity).map((e) => e.term), [2, 2])
  })

  it('writes nothing for a commit-only advance; the next write carries the commit', async () => {
    const storage = new MemoryStorage()
    const persistence = new RaftPersistence(storage, 'g')
    await persistence.load(conf)
    const entry = (index: number, term: number) => ({ term, index, type: 'normal' as const, data: new Uint8Array([index]) })
    const none = { messages: [], committedEntries: [], readStates: [] }
    const stored = async () => decode((await storage.get('raft/g/hardstate'))!) as unknown[]
    await persistence.save({ hardState: { term: 2, vote: 'a', commit: 1 }, entries: [entry(2, 2)], ...none })
    await persistence.save({ hardState: { term: 2, vote: 'a', commit: 2 }, entries: [], ...none })
    assert.deepEqual(await stored(), [2, 'a', 1])
    await persistence.save({ entries: [entry(3, 2)], ...none })
    assert.deepEqual(await stored(), [2, 'a', 2])
    await persistence.save({ hardState: { term: 3, vote: '', commit: 2 }, entries: [], ...none })
    assert.deepEqual(await stored(), [3, '', 2], 'a term change is written at once')
  })

  it('truncates a conflicting suffix on disk', async () => {
    const storage = new MemoryStorage()
    const persistence = new RaftPersistence(storage, 'g')
    await persistence.load(conf)
    const entry = (index: number, term: number) => ({ term, index, type: 'normal' as const, data: new Uint8Array([index]) })
    const none = { messages: [], committedEntries: [], readStates: [] }
    await persistence.save({ entries: [entry(2, 2), entry(3, 2), entry(4, 2)], ...none })
    await persistence.save({ entries: [entry(3, 3)], ...none })
    const view = await new RaftPersistence(storage.crash(), 'g').load(conf)
    assert.equal(view.lastIndex(), 3)
    assert.equal(view.term(3), 3)
  })

  it('rejects corrupt records with a typed error', async () => {
    const storage = new MemoryStorage()
    await storage.batch([{ type: 'put', key: 'raft/g/hardstate', value: new Uint8Array([0xff, 0x00]) }])
    await assert.rejects(new RaftPersistence(storage, 'g').load(conf), (err: unknown) => err instanceof RaftDecodeError && err.code === 'raft-record-malformed')
  })
})

import assert from 'node:assert/strict'
import { type PbftMessage, batchDigest, sign } from '../../../consensus/pbft/index.js'
import type { Entry } from '../../../consensus/types.js'
import { encodeCanonical } from '../../../base/codec.js'
import { TaskBoard, encodeTaskCommand, type TaskCommand } from '../../../node/org/task-board.js'
import { generateIdentity } from '../../../node/runtime/key-file.js'

const GENESIS = 'ab'.repeat(16)
const ORGS = [generateIdentity(), generateIdentity(), generateIdentity(), generateIdentity()]
const me = ORGS[0]!

function entry (index: number, data: Uint8Array, seq = index): Entry {
  return { term: 2, index, type: 'normal', data, requestId: { client: 'pbft.test', seq } }
}

function promise (cmd: Omit<Extract<TaskCommand, { op: 'pbft-promise' }>, 'op' | 'genesis'>): Uint8Array {
  return encodeTaskCommand({ op: 'pbft-promise', genesis: GENESIS, ...cmd })
}

function votes (seq: number): PbftMessage[] {
  const batch = [{ client: 'c', timestamp: seq, op: new Uint8Array([seq]) }]
  const digest = batchDigest(batch)
  return [
    sign(me, me.publicKeyHex, { type: 'PrePrepare', view: 0, seq, digest, batch }),
    sign(me, me.publicKeyHex, { type: 'Commit', view: 0, seq, digest })
  ]
}

describe('PBFT promises in the task board', () => {
  it('appends one Ready per entry, applies a retry once, drops promises below the stable checkpoint, snapshots', () => {
    const board = new TaskBoard()
    assert.equal(board.pbftPromises(GENESIS).restore, undefined)
    const one = entry(1, promise({ record: { promises: votes(1) } }))
    assert.deepEqual(board.apply(one), { ok: true, taskId: '', index: 1, term: 2 })
    board.apply(one)   // a retried proposal committed twice
    assert.equal(board.pbftPromises(GENESIS).restore!.promises.length, 2)

    const stateHash = new Uint8Array(32).fill(7)
    board.apply(entry(2, promise({ record: { promises: votes(2), executed: { seq: 1, stateHash } } })))
    const proof = ORGS.map((o) => sign(o, o.publicKeyHex, { type: 'Checkpoint', seq: 2, stateDigest: stateHash }))
    board.apply(entry(3, promise({ record: { promises: [proof[0]!, ...votes(3)], stable: { seq: 2, stateDigest: stateHash, proof }, executed: { seq: 2, stateHash } } })))

    const state = board.pbftPromises(GENESIS)
    assert.equal(state.restore!.stable!.seq, 2)
    assert.equal(state.restore!.executedSeq, 2)
    assert.deepEqual(state.stateHash, stateHash)
    assert.deepEqual(state.restore!.promises.map((m) => [m.body.type, 'seq' in m.body ? m.body.seq : -1]), [['Checkpoint', 2], ['PrePrepare', 3], ['Commit', 3]])

    const restored = new TaskBoard({}, board.snapshot())
    assert.deepEqual(restored.snapshot(), board.snapshot())
    assert.deepEqual(restored.pbftPromises(GENESIS), state)
    assert.equal(restored.pbftPromises('cd'.repeat(16)).restore, undefined)
  })

  it('refuses malformed records alike on every node, changing nothing', () => {
    const board = new TaskBoard()
    const bad = [
      encodeCanonical(['pbft-promise', 'not-a-genesis', [], null, null]),
      encodeCanonical(['pbft-promise', GENESIS, [new Uint8Array([1, 2, 3])], null, null]),
      encodeCanonical(['pbft-promise', GENESIS, [], null, [1, new Uint8Array(3)]]),
      encodeCanonical(['pbft-promise', GENESIS, [], new Uint8Array([0]), null])
    ]
    for (const [i, data] of bad.entries()) {
      const outcome = board.apply(entry(i + 1, data))
      assert.equal(outcome?.ok, false)
      assert.equal(outcome.ok ? '' : outcome.code, 'task-invalid')
    }
    assert.equal(board.pbftPromises(GENESIS).restore, undefined)
  })
})

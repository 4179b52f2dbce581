import assert from 'node:assert/strict'
import { type PbftMessage, batchDigest, sha256, sign } from '../../../consensus/pbft/index.js'
import type { Entry } from '../../../consensus/types.js'
import { decodeCanonical, encodeCanonical } from '../../../base/codec.js'
import type { BatchRequest } from '../../../node/federation/state.js'
import { OrgStateMachine, REMOVED_FOR_GOOD, encodeOrgCommand, removalContext, type OrgCommand } from '../../../node/org/org-state-machine.js'
import { claimCommand, proposeCommand } from '../../../node/org/task-commands.js'
import { generateIdentity } from '../../../node/runtime/key-file.js'
import { configOf, makeOrg, signedRequest, taskOp } from '../../helpers/federation-ops.js'

// The org's one Raft state machine: beside the task commands it dispatches the org replica's PBFT
// promises and the federation's committed batches and state transfers, and snapshots them all.

const GENESIS = 'ab'.repeat(16)
const ORGS = [generateIdentity(), generateIdentity(), generateIdentity(), generateIdentity()]
const me = ORGS[0]!
const FEDERATED = ['alpha', 'bravo', 'charlie', 'delta'].map(makeOrg)
const [alpha, bravo] = [FEDERATED[0]!, FEDERATED[1]!]
const CONFIG = configOf(GENESIS, FEDERATED)

function entry (index: number, data: Uint8Array, seq = index): Entry {
  return { term: 2, index, type: 'normal', data, requestId: { client: 'pbft.test', seq } }
}

/** One session per entry, as the task service proposes them: any of them can be retried. */
function committed (index: number, cmd: OrgCommand): Entry {
  return { term: 2, index, type: 'normal', data: encodeOrgCommand(cmd), requestId: { client: `c${index}`, seq: 1 } }
}

function promise (cmd: Omit<Extract<OrgCommand, { op: 'pbft-promise' }>, 'op' | 'genesis'>): Uint8Array {
  return encodeOrgCommand({ op: 'pbft-promise', genesis: GENESIS, ...cmd })
}

function batch (seq: number, requests: BatchRequest[], checkpoint = false): OrgCommand {
  return { op: 'federation-apply', batch: { config: CONFIG, instance: GENESIS, seq, requests, checkpoint } }
}

function votes (seq: number): PbftMessage[] {
  const batch = [{ client: 'c', timestamp: seq, op: new Uint8Array([seq]) }]
  const digest = batchDigest(batch)
  return [
    sign(me, me.publicKeyHex, { type: 'PrePrepare', view: 0, seq, digest, batch }),
    sign(me, me.publicKeyHex, { type: 'Commit', view: 0, seq, digest })
  ]
}

function code (outcome: ReturnType<OrgStateMachine['apply']>): string {
  assert.ok(outcome !== undefined)
  return outcome.ok ? 'ok' : outcome.code
}

describe('PBFT promises in the org state machine', () => {
  it('appends one Ready per entry, applies a retry once, drops promises below the stable checkpoint, snapshots', () => {
    const org = new OrgStateMachine()
    assert.equal(org.pbftPromises(GENESIS).restore, undefined)
    const one = entry(1, promise({ record: { promises: votes(1) } }))
    assert.deepEqual(org.apply(one), { ok: true, taskId: '', index: 1, term: 2 })
    org.apply(one)   // a retried proposal committed twice
    assert.equal(org.pbftPromises(GENESIS).restore!.promises.length, 2)

    const stateHash = new Uint8Array(32).fill(7)
    org.apply(entry(2, promise({ record: { promises: votes(2), executed: { seq: 1, stateHash } } })))
    const proof = ORGS.map((o) => sign(o, o.publicKeyHex, { type: 'Checkpoint', seq: 2, stateDigest: stateHash }))
    org.apply(entry(3, promise({ record: { promises: [proof[0]!, ...votes(3)], stable: { seq: 2, stateDigest: stateHash, proof }, executed: { seq: 2, stateHash } } })))

    const state = org.pbftPromises(GENESIS)
    assert.equal(state.restore!.stable!.seq, 2)
    assert.equal(state.restore!.executedSeq, 2)
    assert.deepEqual(state.stateHash, stateHash)
    assert.deepEqual(state.restore!.promises.map((m) => [m.body.type, 'seq' in m.body ? m.body.seq : -1]), [['Checkpoint', 2], ['PrePrepare', 3], ['Commit', 3]])

    const restored = new OrgStateMachine({}, org.snapshot())
    assert.deepEqual(restored.snapshot(), org.snapshot())
    assert.deepEqual(restored.pbftPromises(GENESIS), state)
    assert.equal(restored.pbftPromises('cd'.repeat(16)).restore, undefined)
  })

  it('fences a superseded host: its record that commits after the next host began is refused, alike everywhere and through snapshots', () => {
    const org = new OrgStateMachine()
    org.apply(entry(1, promise({ record: { promises: [], host: 'h1', begin: true } })))
    org.apply(entry(2, promise({ record: { promises: votes(1), host: 'h1' } })))
    org.apply(entry(3, promise({ record: { promises: [], host: 'h2', begin: true } })))
    assert.equal(code(org.apply(entry(4, promise({ record: { promises: votes(2), host: 'h2' } })))), 'ok')
    // h1's retried proposal for slot 2 commits late: had it been kept, a restore would hold two pre-prepares for slot 2.
    const late = org.apply(entry(5, promise({ record: { promises: votes(2).map((m) => ({ ...m, body: { ...m.body, digest: new Uint8Array(32) } })) as PbftMessage[], host: 'h1' } })))
    assert.equal(code(late), 'task-conflict')
    assert.match(late!.ok ? '' : late!.message, /host h1 was superseded by h2/)
    assert.deepEqual(org.pbftPromises(GENESIS).restore!.promises.filter((m) => m.body.type === 'PrePrepare').map((m) => 'seq' in m.body ? m.body.seq : -1), [1, 2])
    const restored = new OrgStateMachine({}, org.snapshot())
    assert.equal(code(restored.apply(entry(6, promise({ record: { promises: [], host: 'h1' } })))), 'task-conflict', 'the fence survives a snapshot')
    assert.equal(code(restored.apply(entry(7, promise({ record: { promises: [], host: 'h2' } })))), 'ok')
  })

  it('refuses malformed records alike on every node, changing nothing', () => {
    const org = new OrgStateMachine()
    const bad = [
      encodeCanonical(['pbft-promise', 'not-a-genesis', [], null, null]),
      encodeCanonical(['pbft-promise', GENESIS, [new Uint8Array([1, 2, 3])], null, null]),
      encodeCanonical(['pbft-promise', GENESIS, [], null, [1, new Uint8Array(3)]]),
      encodeCanonical(['pbft-promise', GENESIS, [], new Uint8Array([0]), null]),
      encodeCanonical(['pbft-promise', GENESIS, [], null, null, '', true]),
      encodeCanonical(['pbft-promise', GENESIS, [], null, null, 'h', 'yes'])
    ]
    for (const [i, data] of bad.entries()) {
      const outcome = org.apply(entry(i + 1, data))
      assert.equal(outcome?.ok, false)
      assert.equal(outcome.ok ? '' : outcome.code, 'task-invalid')
    }
    assert.equal(org.pbftPromises(GENESIS).restore, undefined)
  })
})

describe('federation batches in the org state machine', () => {
  it('applies a batch to the federation state and opens the org\'s copy of its tasks, claimed and finished through the federation only', () => {
    const org = new OrgStateMachine()
    const target = bravo.root.publicKeyHex
    const opened = org.apply(committed(4, batch(1, [signedRequest(alpha, GENESIS, { kind: 'task', title: 'audit', capability: 'ops', payload: '{"n":1}', target })])))
    assert.ok(opened?.ok === true && opened.results !== undefined)
    assert.deepEqual(opened.results.map((r) => decodeCanonical(r)), [[0, 1, 0, 'applied', '']])
    assert.equal(org.federation(GENESIS)?.lastSeq, 1)
    const federation = { id: GENESIS, epoch: 0, seq: 1, position: 0, org: 'alpha', root: alpha.root.publicKeyHex, proposer: alpha.node.publicKeyHex, target }
    assert.deepEqual(org.board.get('t4-0'), {
      id: 't4-0', title: 'audit', capability: 'ops', payload: { federation, payload: { n: 1 } }, proposer: alpha.node.publicKeyHex,
      status: 'open', assignee: null, result: null, createdIndex: 4, updatedIndex: 4
    })
    assert.equal(code(org.apply(committed(5, claimCommand('t4-0', 'bob')))), 'task-conflict')

    org.apply(committed(6, batch(2, [signedRequest(bravo, GENESIS, { kind: 'claim', ref: '0.1.0' })])))
    assert.deepEqual([org.board.get('t4-0')!.status, org.board.get('t4-0')!.assignee, org.board.get('t4-0')!.updatedIndex], ['claimed', bravo.node.publicKeyHex, 6])
    org.apply(committed(7, batch(3, [signedRequest(bravo, GENESIS, { kind: 'finish', ref: '0.1.0', status: 'done', result: '"ok"' })])))
    assert.deepEqual([org.board.get('t4-0')!.status, org.board.get('t4-0')!.result, org.board.get('t4-0')!.updatedIndex], ['done', 'ok', 7])

    // A batch out of sequence, or a malformed one, is refused alike everywhere, changing nothing but the sessions.
    const state = (): unknown[] => (decodeCanonical(org.snapshot()) as unknown[]).filter((_, i) => i !== 2)
    const before = state()
    assert.equal(code(org.apply(committed(8, batch(9, [])))), 'task-conflict')
    assert.equal(code(org.apply(entry(9, encodeCanonical(['federation-apply', 'not a batch'])))), 'task-invalid')
    assert.equal(org.federation(GENESIS)?.lastSeq, 3)
    assert.deepEqual(state(), before)
  })

  it('installs another org\'s federation state core (a state transfer), refusing a malformed one', () => {
    const ahead = new OrgStateMachine()
    ahead.apply(committed(1, batch(1, [signedRequest(alpha, GENESIS, taskOp('one'))])))
    const core = ahead.federation(GENESIS)!.exportCore()
    const behind = new OrgStateMachine()
    assert.deepEqual(behind.apply(committed(1, { op: 'federation-install', install: { config: CONFIG, instance: GENESIS, core } })), { ok: true, taskId: '', index: 1, term: 2 })
    assert.deepEqual(behind.federation(GENESIS)!.exportCore(), core)
    assert.equal(behind.federation(GENESIS)!.lastSeq, 1)
    assert.equal(code(behind.apply(committed(2, { op: 'federation-install', install: { config: CONFIG, instance: GENESIS, core: encodeCanonical(['not a core']) } }))), 'task-invalid')
    assert.deepEqual(behind.federation(GENESIS)!.exportCore(), core)
  })
})

describe('the org state machine\'s snapshot', () => {
  it('restores to an identical machine: board, promise logs, federation state digest and sessions', () => {
    const org = new OrgStateMachine()
    const applied = [
      committed(1, { op: 'pbft-promise', genesis: GENESIS, record: { promises: votes(1) } }),
      committed(2, proposeCommand({ title: 'local', capability: 'c', payload: { k: 1 } }, me.publicKeyHex)),
      committed(3, batch(1, [signedRequest(alpha, GENESIS, taskOp('shared')), signedRequest(bravo, GENESIS, taskOp('other'))], true))
    ]
    const outcomes = applied.map((e) => org.apply(e))
    const digest = outcomes[2]?.ok === true ? outcomes[2].digest : undefined
    assert.ok(digest !== undefined)

    const snapshot = org.snapshot()
    const restored = new OrgStateMachine({}, snapshot)
    assert.deepEqual(restored.snapshot(), snapshot)
    assert.deepEqual(restored.board.list({ limit: 10 }).map((t) => t.id), ['t2', 't3-0', 't3-1'])
    assert.deepEqual(restored.board.list({ limit: 10 }), org.board.list({ limit: 10 }))
    assert.deepEqual(restored.pbftPromises(GENESIS), org.pbftPromises(GENESIS))
    assert.deepEqual(sha256(restored.federation(GENESIS)!.exportCore()), digest)
    // The sessions came along: every retried entry gets its first outcome and applies nothing again.
    assert.deepEqual(applied.map((e) => restored.apply(e)), outcomes)
    assert.deepEqual(restored.snapshot(), snapshot)
    // And both machines go on alike.
    const next = committed(4, batch(2, [signedRequest(bravo, GENESIS, { kind: 'claim', ref: '0.1.0' })]))
    assert.deepEqual(restored.apply(next), org.apply(next))
    assert.deepEqual(restored.snapshot(), org.snapshot())
  })

  it('still restores a version 2 snapshot (before the federation states)', () => {
    const org = new OrgStateMachine()
    org.apply(committed(1, { op: 'pbft-promise', genesis: GENESIS, record: { promises: votes(1) } }))
    org.apply(committed(2, proposeCommand({ title: 'local', capability: 'c' }, me.publicKeyHex)))
    const [, tasks, sessions, promiseLogs] = decodeCanonical(org.snapshot()) as unknown[]
    const restored = new OrgStateMachine({}, encodeCanonical([2, tasks, sessions, promiseLogs]))
    assert.deepEqual(restored.snapshot(), org.snapshot())
    assert.deepEqual(restored.pbftPromises(GENESIS), org.pbftPromises(GENESIS))
  })

  it('remembers members removed with an incarnation, through snapshots, and still restores a version 3 snapshot', () => {
    const org = new OrgStateMachine()
    org.applyConfChange({ type: 'remove', node: 'b', context: removalContext(4) })
    org.applyConfChange({ type: 'remove', node: 'c', context: removalContext(REMOVED_FOR_GOOD) })
    org.applyConfChange({ type: 'remove', node: 'd' })   // the autopilot's: no context, nothing to remember
    org.applyConfChange({ type: 'remove', node: 'e', context: new Uint8Array([0xff]) })
    const restored = new OrgStateMachine({}, org.snapshot())
    for (const m of [org, restored]) {
      assert.deepEqual([m.isRemoved('b', 4), m.isRemoved('b', 5), m.isRemoved('c', 1e9), m.isRemoved('d', 1), m.isRemoved('e', 1)], [true, false, true, false, false])
    }
    const [, tasks, sessions, promiseLogs, federations] = decodeCanonical(org.snapshot()) as unknown[]
    assert.equal(new OrgStateMachine({}, encodeCanonical([3, tasks, sessions, promiseLogs, federations])).isRemoved('b', 1), false)
  })
})

import assert from 'node:assert/strict'
import type { Entry, RequestId } from '../../../consensus/types.js'
import { decodeOrgCommand, encodeOrgCommand, OrgStateMachine } from '../../../node/org/org-state-machine.js'
import { claimCommand, finishCommand, proposeCommand, TaskError, type TaskCommand } from '../../../node/org/task-commands.js'
import { encodeCanonical } from '../../../base/codec.js'
import { TaskBoard } from '../../../node/org/task-board.js'

const P = 'a'.repeat(64)

function entries (commands: Array<TaskCommand | Uint8Array>, from = 2, requestIds: Array<RequestId | undefined> = []): Entry[] {
  return commands.map((c, i) => {
    const e: Entry = { term: 3, index: from + i, type: 'normal', data: c instanceof Uint8Array ? c : encodeOrgCommand(c) }
    const id = requestIds[i]
    if (id !== undefined) e.requestId = id
    return e
  })
}

// The board as the org's Raft log drives it: entries applied by the org state machine.
describe('task board', () => {
  it('runs a task open → claimed → done, with ids from the creating index', () => {
    const org = new OrgStateMachine()
    const [p, c, d] = entries([proposeCommand({ title: 'sum', capability: 'summarize', payload: { a: 1 } }, P), claimCommand('t2', 'bob'), finishCommand('complete', 't2', 'bob', [1, 2])])
    assert.deepEqual(org.apply(p!), { ok: true, taskId: 't2', index: 2, term: 3 })
    assert.deepEqual(org.apply(c!), { ok: true, taskId: 't2', index: 3, term: 3 })
    assert.deepEqual(org.apply(d!), { ok: true, taskId: 't2', index: 4, term: 3 })
    assert.deepEqual(org.board.get('t2'), {
      id: 't2', title: 'sum', capability: 'summarize', payload: { a: 1 }, proposer: P, status: 'done', assignee: 'bob', result: [1, 2], createdIndex: 2, updatedIndex: 4
    })
  })

  it('sums the board up: counts by status, the org\'s tasks and federated copies apart, the newest of each status first', () => {
    const board = new TaskBoard()
    for (let index = 2; index <= 6; index++) board.apply(proposeCommand({ title: `task ${index}`, capability: 'c' }, P), { index, term: 1 })
    board.apply(claimCommand('t3', 'bob'), { index: 7, term: 1 })
    board.openFederated({ title: 'shared', capability: 'c', payload: '{}', federation: { id: 'g', epoch: 0, seq: 1, position: 0, org: 'globex', root: 'r', proposer: P, target: null } }, 8)
    const { counts, recent } = board.summary(2)
    assert.deepEqual(counts, { org: { open: 4, claimed: 1, done: 0, failed: 0 }, federated: { open: 1, claimed: 0, done: 0, failed: 0 } })
    assert.deepEqual(recent.open.map((t) => t.id), ['t8-0', 't6'])
    assert.deepEqual(recent.claimed.map((t) => t.id), ['t3'])
  })

  it('refuses transitions out of order or by another assignee, changing nothing', () => {
    const org = new OrgStateMachine()
    const es = entries([
      proposeCommand({ title: 'x', capability: 'c' }, P), finishCommand('fail', 't2', 'bob', null), claimCommand('t2', 'bob'),
      claimCommand('t2', 'eve'), finishCommand('complete', 't2', 'eve', 'mine'), claimCommand('t9', 'bob')
    ])
    const outcomes = es.map((e) => org.apply(e))
    assert.deepEqual(outcomes.map((o) => o?.ok === false ? o.code : 'ok'), ['ok', 'task-conflict', 'ok', 'task-conflict', 'task-conflict', 'task-not-found'])
    const t = org.board.get('t2')!
    assert.deepEqual([t.status, t.assignee, t.result, t.updatedIndex], ['claimed', 'bob', null, 4])
  })

  it('validates input before proposing, with typed errors naming the field', () => {
    const invalid = (fn: () => unknown, field: RegExp): void => assert.throws(fn, (err: Error) => err instanceof TaskError && err.code === 'task-invalid' && field.test(err.message))
    invalid(() => proposeCommand({ title: '', capability: 'c' }, P), /title/)
    invalid(() => proposeCommand({ title: 'x'.repeat(257), capability: 'c' }, P), /title/)
    invalid(() => proposeCommand({ title: 'a\u0000b', capability: 'c' }, P), /title/)
    invalid(() => proposeCommand({ title: 7, capability: 'c' }, P), /title/)
    invalid(() => proposeCommand({ title: 'x', capability: 'up per' }, P), /capability/)
    assert.equal(proposeCommand({ title: 'x', capability: 'Ops.Deploy' }, P).capability, 'ops.deploy', 'capabilities are case-insensitive: normalised to lower case')
    invalid(() => proposeCommand({ title: 'x', capability: 'c', payload: 'z'.repeat(65_536) }, P), /payload/)
    invalid(() => proposeCommand({ title: 'x', capability: 'c', payload: 10n }, P), /payload/)
    invalid(() => claimCommand('42', 'bob'), /task id/)
    invalid(() => finishCommand('complete', 't1', '', null), /assignee/)
  })

  it('applies garbage entries as refusals, deterministically', () => {
    const org = new OrgStateMachine()
    const [a, b, c] = entries([new Uint8Array([0xff]), encodeCanonical(['propose', 'x', 'c', '{not json', P]), encodeCanonical(['drop', 't1'])])
    for (const e of [a!, b!, c!]) assert.equal(org.apply(e)?.ok, false)
    assert.equal(org.board.size, 0)
    assert.throws(() => decodeOrgCommand(encodeCanonical(['claim', 't1'])), TaskError)
  })

  it('applies a retried request once and answers the retry with the first outcome', () => {
    const org = new OrgStateMachine()
    const cmd = proposeCommand({ title: 'once', capability: 'c' }, P)
    const id = { client: 'u.req-1', seq: 1 }
    const [first, retry] = entries([cmd, cmd], 5, [id, id])
    assert.deepEqual(org.apply(first!), { ok: true, taskId: 't5', index: 5, term: 3 })
    assert.deepEqual(org.apply(retry!), { ok: true, taskId: 't5', index: 5, term: 3 })
    assert.equal(org.board.size, 1)
  })

  it('snapshots deterministically and restores the same board, sessions included', () => {
    const build = (): OrgStateMachine => {
      const org = new OrgStateMachine()
      const cmds = [proposeCommand({ title: 'a', capability: 'c', payload: { k: [1] } }, P), proposeCommand({ title: 'b', capability: 'c' }, P), claimCommand('t3', 'bob')]
      for (const e of entries(cmds, 2, [{ client: 'x', seq: 1 }, undefined, { client: 'y', seq: 1 }])) org.apply(e)
      return org
    }
    const snapshot = build().snapshot()
    assert.deepEqual(build().snapshot(), snapshot)
    const restored = new OrgStateMachine({}, snapshot)
    assert.deepEqual(restored.board.list({ limit: 10 }), build().board.list({ limit: 10 }))
    assert.deepEqual(restored.snapshot(), snapshot)
    const [retry] = entries([proposeCommand({ title: 'a', capability: 'c' }, P)], 9, [{ client: 'x', seq: 1 }])
    assert.deepEqual(restored.apply(retry!), { ok: true, taskId: 't2', index: 2, term: 3 })
    assert.throws(() => new OrgStateMachine({}, new Uint8Array([1, 2, 3])), (err: Error) => err instanceof TaskError && err.code === 'task-snapshot-malformed')
  })

  it('stays bounded: evicts the oldest finished task, refuses when every task is unfinished', () => {
    const org = new OrgStateMachine({ tasksMax: 2 })
    const cmds = [
      proposeCommand({ title: 'a', capability: 'c' }, P), proposeCommand({ title: 'b', capability: 'c' }, P),
      proposeCommand({ title: 'c', capability: 'c' }, P), claimCommand('t1', 'w'), finishCommand('fail', 't1', 'w', 'no'),
      proposeCommand({ title: 'd', capability: 'c' }, P)
    ]
    const outcomes = entries(cmds, 1).map((e) => org.apply(e))
    assert.deepEqual(outcomes.map((o) => o?.ok === false ? o.code : 'ok'), ['ok', 'ok', 'task-board-full', 'ok', 'ok', 'ok'])
    assert.deepEqual(org.board.list({ limit: 10 }).map((t) => t.title), ['b', 'd'])
    assert.deepEqual(org.board.list({ limit: 10, status: 'open', afterIndex: 2 }).map((t) => t.id), ['t6'])
  })
})

import '../../../node/runtime/polyfills.js'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FedmeshError } from '../../../base/errors.js'
import { silentLogger } from '../../../base/log.js'
import { FedmeshNode } from '../../../node/node.js'
import { inviteToken } from '../../../node/org/org-identity.js'
import { waitFor } from '../../helpers/cli-node.js'

const RAFT = { tickMs: 20, electionTicks: 10 }

describe('an organisation\'s task board replicated by Raft (3 in-process nodes, real libp2p on 127.0.0.1)', function () {
  this.timeout(30_000)
  let root: string
  const nodes: FedmeshNode[] = []

  const start = async (name: string, options: { org?: string, join?: string }): Promise<FedmeshNode> => {
    const node = await FedmeshNode.start({ dataDir: join(root, name), listen: ['/ip4/127.0.0.1/tcp/0'], api: null, heartbeatMs: 200, logger: silentLogger, raft: RAFT, ...options })
    nodes.push(node)
    return node
  }
  const live = (): FedmeshNode[] => nodes.filter((n) => n !== undefined)
  const rejectsWith = (code: string) => (err: Error) => err instanceof FedmeshError && err.code === code

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'fedmesh-raft-org-'))
    const founder = await start('a', { org: 'acme' })
    for (const name of ['b', 'c']) {
      await start(name, { join: await inviteToken(join(root, 'a'), founder.multiaddrs(), Date.now(), new Uint8Array(randomBytes(16))) })
    }
  })

  after(async () => {
    for (const node of live()) await node.stop().catch(() => undefined)
    await rm(root, { recursive: true, force: true })
  })

  it('the founder leads; the others join as learners and are promoted to voters', async () => {
    const keys = nodes.map((n) => n.key).sort()
    await waitFor('3 voters on every node', () => nodes.every((n) => JSON.stringify(n.status().raft.voters) === JSON.stringify(keys)), 10_000, 20)
    const leaders = nodes.filter((n) => n.status().raft.role === 'leader')
    assert.deepEqual(leaders.map((n) => n.key), [nodes[0]!.key])
    for (const n of nodes) assert.equal(n.status().raft.leader, nodes[0]!.key)
  })

  it('a proposal on a follower is forwarded, committed and applied on all 3', async () => {
    const receipt = await nodes[1]!.propose({ title: 'summarize Q3', capability: 'summarize', payload: { doc: 42 } })
    assert.match(receipt.taskId, /^t\d+$/)
    assert.equal(receipt.taskId, `t${receipt.index}`)
    await waitFor('the task on every node', async () => (await Promise.all(nodes.map(async (n) => await n.tasks.get(receipt.taskId)))).every((t) => t !== undefined), 5_000, 20)
    for (const n of nodes) {
      const task = (await n.tasks.get(receipt.taskId))!
      assert.deepEqual({ ...task }, {
        id: receipt.taskId, title: 'summarize Q3', capability: 'summarize', payload: { doc: 42 }, proposer: nodes[1]!.key,
        status: 'open', assignee: null, result: null, createdIndex: receipt.index, updatedIndex: receipt.index
      })
    }
  })

  it('claim and complete move a task open → claimed → done; a linearizable read on another node sees it', async () => {
    const { taskId } = await nodes[0]!.propose({ title: 'translate', capability: 'translate' })
    const claimed = await nodes[2]!.claim(taskId)
    await assert.rejects(nodes[1]!.claim(taskId), rejectsWith('task-conflict'))
    await assert.rejects(nodes[1]!.complete(taskId, 'not mine'), rejectsWith('task-conflict'))
    const done = await nodes[2]!.complete(taskId, { text: 'bonjour' })
    assert.ok(done.index > claimed.index)
    const seen = await nodes[1]!.tasks.get(taskId, { linearizable: true })
    assert.equal(seen?.status, 'done')
    assert.equal(seen?.assignee, nodes[2]!.key)
    assert.deepEqual(seen?.result, { text: 'bonjour' })
    assert.deepEqual((await nodes[0]!.tasks.list({ status: 'done' }, { linearizable: true })).map((t) => t.id), [taskId])
  })

  it('refuses invalid input with a typed error and proposes nothing', async () => {
    const before = nodes[0]!.status().raft.lastIndex
    await assert.rejects(nodes[0]!.propose({ title: '', capability: 'x' }), rejectsWith('task-invalid'))
    await assert.rejects(nodes[0]!.propose({ title: 'ok', capability: 'NOT A CAPABILITY' }), rejectsWith('task-invalid'))
    await assert.rejects(nodes[0]!.propose({ title: 'ok', capability: 'x', payload: 'y'.repeat(70_000) }), rejectsWith('task-invalid'))
    await assert.rejects(nodes[0]!.claim('t999999'), rejectsWith('task-not-found'))
    assert.equal(nodes[0]!.status().raft.lastIndex, before + 1, 'only the claim of an unknown task reached the log')
  })

  it('a request retried with the same id, even on another node, applies once', async () => {
    const first = await nodes[1]!.propose({ title: 'once', capability: 'x' }, { requestId: 'req-1' })
    const again = await nodes[2]!.propose({ title: 'once', capability: 'x' }, { requestId: 'req-1' })
    assert.deepEqual(again, first)
    const all = await nodes[0]!.tasks.list({ limit: 1000 }, { linearizable: true })
    assert.equal(all.filter((t) => t.title === 'once').length, 1)
  })

  it('a gracefully stopping leader hands leadership over, and the group keeps committing', async () => {
    const leader = nodes[0]!
    await leader.stop()
    delete nodes[0]
    const rest = live()
    const newLeader = rest.find((n) => n.status().raft.role === 'leader')
    assert.ok(newLeader !== undefined, 'leadership was transferred before the leader stopped')
    const receipt = await rest[1]!.propose({ title: 'after the handover', capability: 'x' })
    assert.ok(receipt.term > 1)
    assert.equal((await rest[0]!.tasks.get(receipt.taskId, { linearizable: true }))?.title, 'after the handover')
  })

  it('removes a departed member on command from any member (asked of the leader), and says when nothing was removed', async () => {
    const [b, c] = live()
    const leader = b!.status().raft.role === 'leader' ? b! : c!
    const follower = leader === b ? c! : b!
    const departed = leader.status().raft.voters.find((k) => k !== b!.key && k !== c!.key)!
    await follower.tasks.removeMember(departed)
    assert.deepEqual(leader.status().raft.voters, [b!.key, c!.key].sort())
    await waitFor('the follower to apply the removal', () => follower.status().raft.voters.length === 2, 5_000, 20)
    await assert.rejects(follower.tasks.removeMember(departed), rejectsWith('raft-not-member'))
    await assert.rejects(leader.tasks.removeMember(follower.key).then(async () => await leader.tasks.removeMember(leader.key)), rejectsWith('raft-invalid-conf-change'))
  })
})

describe('an org\'s Raft group: snapshots, restarts and the HTTP API (in-process, real libp2p)', function () {
  this.timeout(30_000)
  let root: string
  const nodes: FedmeshNode[] = []
  const raft = { ...RAFT, snapshotEntries: 8, compactionRetainEntries: 2 }

  const start = async (name: string, options: { org?: string, join?: string, bootstrap?: string[] }): Promise<FedmeshNode> => {
    const node = await FedmeshNode.start({ dataDir: join(root, name), listen: ['/ip4/127.0.0.1/tcp/0'], api: { host: '127.0.0.1', port: 0 }, heartbeatMs: 200, logger: silentLogger, raft, ...options })
    nodes.push(node)
    return node
  }
  const invite = async (): Promise<string> => await inviteToken(join(root, 'a'), nodes[0]!.multiaddrs(), Date.now(), new Uint8Array(randomBytes(16)))
  const titles = async (node: FedmeshNode): Promise<string[]> => (await node.tasks.list({ limit: 1000 }, { linearizable: true })).map((t) => t.title)

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'fedmesh-raft-snap-'))
    await start('a', { org: 'acme' })
  })

  after(async () => {
    for (const node of nodes) await node.stop().catch(() => undefined)
    await rm(root, { recursive: true, force: true })
  })

  it('a member joining after log compaction catches up from a snapshot', async () => {
    const expected: string[] = []
    for (let i = 0; i < 30; i++) {
      expected.push(`task ${i}`)
      await nodes[0]!.propose({ title: `task ${i}`, capability: 'c' })
    }
    assert.ok(nodes[0]!.status().raft.commit > 30)
    const late = await start('b', { join: await invite() })
    await waitFor('the late joiner to be a voter', () => late.status().raft.voters.includes(late.key), 10_000, 20)
    assert.deepEqual(await titles(late), expected)
  })

  it('a restarted member rebuilds its board from its snapshot and log', async () => {
    const b = nodes[1]!
    const before = await titles(b)
    await b.stop()
    nodes.splice(1, 1)
    const again = await start('b', { bootstrap: nodes[0]!.multiaddrs() })
    assert.deepEqual((await again.tasks.list({ limit: 1000 })).map((t) => t.title).slice(0, before.length), before, 'rebuilt from local storage')
    await nodes[0]!.propose({ title: 'after b is back', capability: 'c' })
    assert.deepEqual(await titles(again), [...before, 'after b is back'])
  })

  it('answers the HTTP API with receipts, and 400/404/409 with the reason', async () => {
    const node = nodes[0]!
    const token = (await import('node:fs/promises')).readFile(join(root, 'a', 'api.token'), 'utf8')
    const call = async (method: string, path: string, body?: string): Promise<{ status: number, json: Record<string, unknown> }> => {
      const res = await fetch(node.apiUrl! + path, { method, headers: { authorization: `Bearer ${(await token).trim()}` }, ...(body === undefined ? {} : { body }) })
      return { status: res.status, json: await res.json() as Record<string, unknown> }
    }
    const created = await call('POST', '/v1/tasks', JSON.stringify({ title: 'via http', capability: 'c', payload: [1] }))
    assert.equal(created.status, 200)
    const id = created.json.taskId as string
    assert.equal((await call('GET', `/v1/tasks/${id}?linearizable=1`)).json.title, 'via http')
    assert.equal((await call('POST', `/v1/tasks/${id}/claim`, '{}')).status, 200)
    assert.deepEqual(await call('POST', `/v1/tasks/${id}/claim`, '{}'), { status: 409, json: { error: `task ${id} is claimed, not open`, code: 'task-conflict' } })
    assert.equal((await call('POST', '/v1/tasks', '{"title": ')).status, 400)
    assert.equal((await call('POST', '/v1/tasks', 'x'.repeat(300_000))).status, 413)
    const bad = await call('POST', '/v1/tasks', JSON.stringify({ title: 'x', capability: 'no pe' }))
    assert.equal(bad.status, 400)
    assert.equal(bad.json.code, 'task-invalid')
    assert.equal((await call('GET', '/v1/tasks/t99999')).status, 404)
    assert.equal((await call('GET', '/v1/tasks?status=lost')).status, 400)
    const listed = await call('GET', '/v1/tasks?status=claimed')
    assert.deepEqual((listed.json as unknown as Array<{ id: string }>).map((t) => t.id), [id])
    const status = (await call('GET', '/v1/status')).json.raft as { role: string, leader: string, commit: number, applied: number }
    assert.equal(status.role, 'leader')
    assert.equal(status.leader, node.key)
    assert.ok(status.applied === status.commit && status.commit > 30)
  })
})

import '../../node/polyfills.js'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FedmeshError } from '../../node/errors.js'
import { silentLogger } from '../../node/log.js'
import { FedmeshNode } from '../../node/node.js'
import { inviteToken } from '../../node/org-identity.js'
import { waitFor } from '../helpers/cli-node.js'

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
})

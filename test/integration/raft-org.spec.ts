import '../../node/runtime/polyfills.js'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { RaftNodeStatus } from '../../consensus/raft/driver.js'
import type { Task } from '../../node/org/task-board.js'
import { CLI, CliNode, waitFor } from '../helpers/cli-node.js'

const run = promisify(execFile)
async function fedmesh (...args: string[]): Promise<string> {
  return (await run(process.execPath, [CLI, ...args], { timeout: 10_000 })).stdout
}

// The node's defaults: 50 ms ticks, an election timeout drawn from 10-19 ticks.
const ELECTION_TIMEOUT_MS_MAX = 20 * 50
const TIMING = ['--heartbeat-ms', '250']
const PROPOSERS = 4

async function post (node: CliNode, path: string, body: unknown): Promise<{ taskId: string }> {
  const res = await fetch(node.runtime.api + path, {
    method: 'POST',
    headers: { authorization: `Bearer ${node.token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(3_000)
  })
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`)
  return await res.json() as { taskId: string }
}

const raftOf = async (node: CliNode): Promise<RaftNodeStatus> => (await node.get<{ raft: RaftNodeStatus }>('/v1/status')).raft

async function allTasks (node: CliNode): Promise<Task[]> {
  const out: Task[] = []
  for (;;) {
    const page = await node.get<Task[]>(`/v1/tasks?limit=1000&after=${out.at(-1)?.createdIndex ?? 0}`)
    out.push(...page)
    if (page.length < 1000) return out
  }
}

describe('an org\'s task board in 3 fedmesh processes: the leader is SIGKILLed mid-stream', function () {
  this.timeout(60_000)
  let root: string
  const nodes: CliNode[] = []

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'fedmesh-raft-'))
    nodes.push(await CliNode.start(join(root, 'n0'), [...TIMING, '--org', 'acme']))
    const tokens = [(await fedmesh('invite', '--data-dir', nodes[0]!.dataDir)).trim(), (await fedmesh('invite', '--data-dir', nodes[0]!.dataDir)).trim()]
    nodes.push(...await Promise.all(tokens.map(async (token, i) => await CliNode.start(join(root, `n${i + 1}`), [...TIMING, '--join', token]))))
  })

  after(async () => {
    await Promise.all(nodes.map(async (n) => { if (n.child.exitCode === null && n.child.signalCode === null) await n.kill('SIGKILL') }))
    await rm(root, { recursive: true, force: true })
  })

  it('forms one group of 3 voters led by the founder, and serves the task CLI', async () => {
    const keys = nodes.map((n) => n.key).sort()
    await waitFor('3 voters on every node', async () => (await Promise.all(nodes.map(raftOf))).every((r) => JSON.stringify(r.voters) === JSON.stringify(keys)), 15_000)
    assert.equal((await raftOf(nodes[1]!)).leader, nodes[0]!.key)
    const receipt = JSON.parse(await fedmesh('task', 'propose', '--title', 'from the CLI', '--capability', 'summarize', '--payload', '{"n":1}', '--json', '--data-dir', nodes[2]!.dataDir)) as { taskId: string }
    const task = JSON.parse(await fedmesh('task', 'get', receipt.taskId, '--linearizable', '--json', '--data-dir', nodes[1]!.dataDir)) as Task
    assert.deepEqual([task.title, task.payload, task.status], ['from the CLI', { n: 1 }, 'open'])
    await assert.rejects(fedmesh('task', 'propose', '--title', 'x', '--capability', 'Bad Name', '--data-dir', nodes[2]!.dataDir), /400.*capability must match/)
  })

  it('elects a new leader within 2 election timeouts, and every resolved proposal is on all 3 nodes exactly once', async () => {
    const resolved = new Map<string, string>() // title → taskId
    let killed: CliNode | undefined
    let stopping = false
    const proposer = async (lane: number): Promise<void> => {
      for (let i = 0; !stopping; i++) {
        const title = `job-${lane}-${i}`
        for (let attempt = 0; !stopping; attempt++) {
          const candidates = nodes.filter((n) => n !== killed)
          const target = candidates[(lane + attempt) % candidates.length]!
          try {
            const { taskId } = await post(target, '/v1/tasks', { title, capability: 'work', payload: { lane, i }, requestId: title })
            resolved.set(title, taskId)
            break
          } catch {
            await new Promise((resolve) => setTimeout(resolve, 50))
          }
        }
      }
    }
    const proposers = Array.from({ length: PROPOSERS }, async (_, lane) => await proposer(lane))
    try {
      await waitFor('some proposals to resolve', () => resolved.size >= 20, 10_000, 20)
      const before = await raftOf(nodes[0]!)
      killed = nodes.find((n) => n.key === before.leader)!
      const survivors = nodes.filter((n) => n !== killed)
      await killed.kill('SIGKILL')
      const killedMs = Date.now()
      const after = await waitFor('a new leader among the survivors', async () => {
        const views = await Promise.all(survivors.map(raftOf))
        return views.find((r) => r.role === 'leader' && r.term > before.term)
      }, 10_000, 20)
      const electedMs = Date.now() - killedMs
      assert.ok(electedMs <= 2 * ELECTION_TIMEOUT_MS_MAX, `new leader after ${electedMs} ms`)
      const atKill = resolved.size
      await waitFor('proposals to resolve under the new leader', () => resolved.size >= atKill + 20, 10_000, 20)
      assert.notEqual(after.leader, killed.key)

      nodes[nodes.indexOf(killed)] = await CliNode.start(killed.dataDir, [...TIMING, '--bootstrap', survivors[0]!.address])
      killed = undefined
      const restartedAt = resolved.size
      await waitFor('proposals to resolve with the restarted node back', () => resolved.size >= restartedAt + 20, 10_000, 20)
    } finally {
      stopping = true
      await Promise.all(proposers)
    }

    const commit = Math.max(...(await Promise.all(nodes.map(raftOf))).map((r) => r.commit))
    await waitFor('every node to apply everything committed', async () => (await Promise.all(nodes.map(raftOf))).every((r) => r.applied >= commit), 15_000)
    const boards = await Promise.all(nodes.map(allTasks))
    for (const board of boards) {
      assert.deepEqual(board.map((t) => [t.id, t.title]), boards[0]!.map((t) => [t.id, t.title]), 'every node holds the same board')
      const byTitle = new Map<string, string[]>()
      for (const t of board) byTitle.set(t.title, [...(byTitle.get(t.title) ?? []), t.id])
      for (const [title, ids] of byTitle) assert.equal(ids.length, 1, `${title} applied ${ids.length} times`)
      for (const [title, taskId] of resolved) assert.deepEqual(byTitle.get(title), [taskId], `${title} present once, as its receipt says`)
    }
    assert.ok(resolved.size >= 60, `${resolved.size} proposals resolved`)
  })
})

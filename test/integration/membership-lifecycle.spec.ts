import '../../node/runtime/polyfills.js'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { RaftMembers, RaftNodeStatus } from '../../consensus/raft/driver.js'
import { silentLogger } from '../../base/log.js'
import type { AuditEntry } from '../../node/gate/audit.js'
import { FedmeshNode } from '../../node/node.js'
import { inviteToken } from '../../node/org/org-identity.js'
import type { Task } from '../../node/org/task-board.js'
import { CLI, CliNode, waitFor } from '../helpers/cli-node.js'

// The org membership lifecycle an operator of Consul or etcd expects, on real processes (and, for
// the dead-voter cleanup, in-process nodes) on 127.0.0.1: leave, remove through the leader from any
// member, no silent re-adding, autopilot, and the recovery of an org that lost its quorum.

const run = promisify(execFile)
async function fedmesh (...args: string[]): Promise<string> {
  return (await run(process.execPath, [CLI, ...args], { timeout: 40_000 })).stdout
}

const TIMING = ['--heartbeat-ms', '250']
const raftOf = async (node: CliNode): Promise<RaftNodeStatus> => (await node.get<{ raft: RaftNodeStatus }>('/v1/status')).raft
const sorted = (keys: string[]): string[] => [...keys].sort()

async function post (node: CliNode, path: string, body: unknown): Promise<{ status: number, json: Record<string, unknown> }> {
  const res = await fetch(node.runtime.api + path, {
    method: 'POST',
    headers: { authorization: `Bearer ${node.token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(15_000)
  })
  return { status: res.status, json: await res.json() as Record<string, unknown> }
}

async function startOrg (root: string): Promise<CliNode[]> {
  const founder = await CliNode.start(join(root, 'a'), [...TIMING, '--org', 'acme'])
  const tokens = [(await fedmesh('invite', '--data-dir', founder.dataDir)).trim(), (await fedmesh('invite', '--data-dir', founder.dataDir)).trim()]
  const nodes = [founder, ...await Promise.all(tokens.map(async (token, i) => await CliNode.start(join(root, 'bc'[i]!), [...TIMING, '--join', token])))]
  const keys = sorted(nodes.map((n) => n.key))
  await waitFor('3 voters on every node', async () => (await Promise.all(nodes.map(raftOf))).every((r) => JSON.stringify(r.voters) === JSON.stringify(keys)), 20_000)
  return nodes
}

async function stopAll (nodes: CliNode[]): Promise<void> {
  await Promise.all(nodes.map(async (n) => { if (n.child.exitCode === null && n.child.signalCode === null) await n.kill('SIGKILL') }))
}

describe('org membership lifecycle: leave, remove, no silent re-adding (fedmesh processes on 127.0.0.1)', function () {
  this.timeout(60_000)
  let root: string
  let a: CliNode, b: CliNode, c: CliNode

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'fedmesh-lifecycle-'))
    ;[a, b, c] = await startOrg(root) as [CliNode, CliNode, CliNode]
  })

  after(async () => {
    await stopAll([a, b, c])
    await rm(root, { recursive: true, force: true })
  })

  it('answers `raft members` on a follower from the leader, and 404 for a key that was never a member', async () => {
    const view = JSON.parse(await fedmesh('raft', 'members', '--json', '--data-dir', b.dataDir)) as RaftMembers
    assert.equal(view.leader, a.key)
    assert.deepEqual(view.members.map((m) => [m.key, m.role, m.healthy]).sort(), sorted([a.key, b.key, c.key]).map((k) => [k, 'voter', true]))
    const stranger = 'ab'.repeat(32)
    const refused = await post(b, '/v1/raft/remove', { key: stranger })
    assert.equal(refused.status, 404)
    assert.equal(refused.json.code, 'raft-not-member')
    assert.match(refused.json.error as string, /nothing was removed/)
    await assert.rejects(fedmesh('members', 'remove', stranger, '--data-dir', b.dataDir), /404/)
  })

  it('removes a running member from a follower; the leader does not add it back while it runs, only once it restarted', async () => {
    const out = await fedmesh('members', 'remove', c.key, '--data-dir', b.dataDir)
    assert.match(out, new RegExp(`removed ${c.key}`))
    await waitFor('the removal on the leader', async () => JSON.stringify((await raftOf(a)).voters) === JSON.stringify(sorted([a.key, b.key])), 5_000)
    assert.ok((await b.get<AuditEntry[]>('/v1/audit?tail=50')).some((e) => e.action === 'raft.member.remove' && e.peer === c.key), 'audited where it was asked')
    // c keeps running and announcing itself; the leader reconciles its group every 5 ticks meanwhile.
    for (let i = 0; i < 8; i++) {
      await post(a, '/v1/tasks', { title: `while c is out ${i}`, capability: 'work' })
      await new Promise((resolve) => setTimeout(resolve, 250))
      const raft = await raftOf(a)
      assert.ok(![...raft.voters, ...raft.learners].includes(c.key), 'c was added back')
      assert.equal((await a.members()).find((m) => m.key === c.key)?.status, 'alive')
    }
    assert.equal(await c.kill('SIGTERM'), 0)
    c = await CliNode.start(c.dataDir, [...TIMING, '--bootstrap', a.address])
    await waitFor('the restarted c back as a voter', async () => (await raftOf(a)).voters.includes(c.key), 15_000)
  })

  it('`fedmesh leave` has the leader remove the node, then the node exits', async () => {
    const out = await fedmesh('leave', '--data-dir', b.dataDir)
    assert.match(out, /left the org's Raft group\nnode stopped/)
    assert.equal(await b.exited, 0)
    assert.deepEqual((await raftOf(a)).voters, sorted([a.key, c.key]))
  })

  it('SIGTERM on the invitee of a two-node org removes it, and the founder stays writable', async () => {
    assert.equal(await c.kill('SIGTERM'), 0)
    assert.deepEqual((await raftOf(a)).voters, [a.key])
    const written = await post(a, '/v1/tasks', { title: 'alone', capability: 'work' })
    assert.equal(written.status, 200)
  })
})

describe('org disaster recovery: a majority killed, the survivor forced to be the only voter (fedmesh processes)', function () {
  this.timeout(60_000)
  let root: string
  let nodes: CliNode[] = []

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'fedmesh-recover-'))
    nodes = await startOrg(root)
  })

  after(async () => {
    await stopAll(nodes)
    await rm(root, { recursive: true, force: true })
  })

  it('restarts one survivor with --force-new-group from its own log (audited); a removed node never rejoins', async () => {
    const [a, b, c] = nodes as [CliNode, CliNode, CliNode]
    assert.equal((await post(b, '/v1/tasks', { title: 'before the disaster', capability: 'work' })).status, 200)
    await waitFor('c to apply it', async () => (await raftOf(c)).applied >= (await raftOf(a)).commit, 5_000)
    await Promise.all([a.kill('SIGKILL'), b.kill('SIGKILL')])
    await waitFor('c to lose its leader', async () => (await raftOf(c)).leader === null, 10_000)
    assert.equal(await c.kill('SIGTERM'), 0, 'a leave without a quorum does not hold up the stop')

    const survivor = await CliNode.start(c.dataDir, [...TIMING, '--force-new-group'])
    nodes[2] = survivor
    await waitFor('the survivor to lead alone', async () => { const r = await raftOf(survivor); return r.role === 'leader' && r.voters.length === 1 }, 10_000)
    assert.deepEqual(await raftOf(survivor).then((r) => [r.voters, r.learners]), [[c.key], []])
    assert.equal((await post(survivor, '/v1/tasks', { title: 'after the recovery', capability: 'work' })).status, 200)
    const titles = (await survivor.get<Task[]>('/v1/tasks?limit=1000')).map((t) => t.title)
    assert.deepEqual(titles.filter((t) => t.endsWith('disaster') || t.endsWith('recovery')), ['before the disaster', 'after the recovery'])
    const audited = (await survivor.get<AuditEntry[]>('/v1/audit?tail=100')).filter((e) => e.action === 'raft.force-new-group')
    assert.equal(audited.length, 1)
    assert.equal(audited[0]!.detail.removed, sorted([a.key, b.key]).join(','))

    // b comes back with its old data dir: its log may hold entries the survivor never had, so it stays out.
    nodes[1] = await CliNode.start(b.dataDir, [...TIMING, '--bootstrap', survivor.address])
    await waitFor('the survivor to see b alive', async () => (await survivor.members()).find((m) => m.key === b.key)?.status === 'alive', 10_000)
    for (let i = 0; i < 8; i++) {
      await new Promise((resolve) => setTimeout(resolve, 250))
      const r = await raftOf(survivor)
      assert.deepEqual([r.voters, r.learners], [[c.key], []], 'b was added back')
    }
  })
})

describe('org autopilot: a voter dead past the threshold is removed and a healthy learner takes its place (in-process, real libp2p)', function () {
  this.timeout(30_000)
  let root: string
  const nodes: FedmeshNode[] = []
  const raft = { tickMs: 20, electionTicks: 10, votersMax: 3, deadVoterRemoveAfterMs: 1_000 }

  before(async () => { root = await mkdtemp(join(tmpdir(), 'fedmesh-autopilot-')) })
  after(async () => {
    for (const n of nodes) await n.stop().catch(() => undefined)
    await rm(root, { recursive: true, force: true })
  })

  it('removes the dead voter once it was silent for deadVoterRemoveAfterMs, and promotes the learner', async () => {
    const start = async (name: string, options: { org?: string, join?: string }): Promise<FedmeshNode> => {
      const node = await FedmeshNode.start({ dataDir: join(root, name), listen: ['/ip4/127.0.0.1/tcp/0'], api: null, heartbeatMs: 200, logger: silentLogger, raft, ...options })
      nodes.push(node)
      return node
    }
    const a = await start('a', { org: 'acme' })
    for (const name of ['b', 'c', 'd']) await start(name, { join: await inviteToken(join(root, 'a'), a.multiaddrs(), Date.now(), new Uint8Array(randomBytes(16))) })
    await waitFor('3 voters and a learner', () => a.status().raft.voters.length === 3 && a.status().raft.learners.length === 1, 10_000, 20)
    const learner = a.status().raft.learners[0]!
    const victim = nodes.find((n) => n !== a && a.status().raft.voters.includes(n.key))!
    await victim.stop()
    const rest = sorted(nodes.filter((n) => n !== victim).map((n) => n.key))
    assert.ok(rest.includes(learner))
    await waitFor('the dead voter removed and the learner promoted', () => JSON.stringify(a.status().raft.voters) === JSON.stringify(rest), 10_000, 20)
    assert.deepEqual(a.status().raft.learners, [])
    await a.propose({ title: 'after the cleanup', capability: 'work' })
  })

  it('removes the leader itself on an operator\'s request from a follower, and does not add it back while it runs', async () => {
    const a = nodes[0]!
    const [follower, other] = nodes.filter((n) => a.status().raft.voters.includes(n.key) && n !== a) as [FedmeshNode, FedmeshNode]
    await follower.removeMember(a.key)
    await waitFor('a new leader without a', () => other.status().raft.role === 'leader' || follower.status().raft.role === 'leader', 10_000, 20)
    const leader = follower.status().raft.role === 'leader' ? follower : other
    for (let i = 0; i < 10; i++) {
      await leader.propose({ title: `without a ${i}`, capability: 'work' })
      await new Promise((resolve) => setTimeout(resolve, 100))
      const r = leader.status().raft
      assert.deepEqual([r.voters, r.learners], [sorted([follower.key, other.key]), []], 'a was added back')
    }
    assert.ok(leader.orgMembers().includes(a.key), 'a is still alive in the org')
  })
})

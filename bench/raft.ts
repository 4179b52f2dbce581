// Raft benchmark: an org's task board in 3 fedmesh processes on loopback (LevelDB, every Ready one
// synced batch) against a 3-member etcd cluster on loopback (fsync on), same shape, same run:
// C closed-loop clients each awaiting its commit before the next, 256-byte payloads, spread
// round-robin over the 3 members. Prints ops/s, p50, p99, the fedmesh/etcd ratios, and where
// fedmesh's time goes: CPU per op in each process, and entries per synced write batch.
//   npm run bench:raft [-- --concurrency 1,16,64,256 --seconds 5]
// Installs Debian's etcd-server when etcd is missing (root, apt-get).
import '../node/runtime/polyfills.js'
import { execFileSync } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Agent, request } from 'undici'
import type { RaftNodeStatus } from '../consensus/raft/driver.js'
import { CLI, CliNode, waitFor } from '../test/helpers/cli-node.js'
import { closedLoop, describeLevel, type Level, type Op } from './closed-loop.js'
import { compareWithEtcd, etcdLevels, etcdVersion } from './etcd-baseline.js'
import { round, writeResult } from './stats.js'

const { values: opts } = parseArgs({ options: { concurrency: { type: 'string', default: '1,16,64,256' }, seconds: { type: 'string', default: '5' }, 'payload-bytes': { type: 'string', default: '256' }, target: { type: 'string', default: 'all' } } })
const LEVELS = opts.concurrency.split(',').map(Number)
const SECONDS = Number(opts.seconds)
const PAYLOAD = 'x'.repeat(Number(opts['payload-bytes']))
/** 'all': round-robin over the 3 members (followers forward); 'leader': the leader's API only. */
const TARGET = opts.target === 'leader' ? 'leader' : 'all'
const LOOP = { warmupMs: 1000, seconds: SECONDS }

async function fedmeshRun (): Promise<{ levels: Level[], entriesPerBatch: number[], leaderDrops: number[] }> {
  const root = await mkdtemp(join(tmpdir(), 'fedmesh-bench-raft-'))
  const nodes: CliNode[] = []
  const agent = new Agent({ connections: 512 })
  try {
    nodes.push(await CliNode.start(join(root, 'n0'), ['--org', 'bench']))
    for (let i = 1; i < 3; i++) {
      const token = execFileSync(process.execPath, [CLI, 'invite', '--data-dir', nodes[0]!.dataDir]).toString().trim()
      nodes.push(await CliNode.start(join(root, `n${i}`), ['--join', token]))
    }
    const raftOf = async (n: CliNode): Promise<RaftNodeStatus> => (await n.get<{ raft: RaftNodeStatus }>('/v1/status')).raft
    await waitFor('3 voters', async () => (await Promise.all(nodes.map(raftOf))).every((r) => r.voters.length === 3), 30_000)
    const leader = nodes[0]! // the founder leads until it fails
    const op: Op = async (w, i) => {
      const node = TARGET === 'leader' ? leader : nodes[(w + i) % nodes.length]!
      const res = await request(`${node.runtime.api}/v1/tasks`, {
        method: 'POST', dispatcher: agent,
        headers: { authorization: `Bearer ${node.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ title: `w${w}-${i}`, capability: 'bench', payload: PAYLOAD })
      })
      await res.body.dump()
      if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`)
    }
    const levels: Level[] = []
    const entriesPerBatch: number[] = []
    const leaderDrops: number[] = []
    for (const c of LEVELS) {
      const before = await leaderCounters(leader)
      const level = await closedLoop(c, op, nodes.map((n) => n.child.pid!), LOOP)
      const after = await leaderCounters(leader)
      leaderDrops.push(after.drops - before.drops)
      entriesPerBatch.push(round((after.lastIndex - before.lastIndex) / Math.max(1, after.readies - before.readies)))
      levels.push(level)
      console.log(`${describeLevel('fedmesh', level)}, entries per leader batch ${entriesPerBatch.at(-1)}, messages dropped by the leader ${leaderDrops.at(-1)}`)
    }
    return { levels, entriesPerBatch, leaderDrops }
  } finally {
    await agent.close()
    await Promise.all(nodes.map(async (n) => { if (n.child.exitCode === null) await n.kill('SIGKILL') }))
    await rm(root, { recursive: true, force: true })
  }
}

async function leaderCounters (leader: CliNode): Promise<{ readies: number, drops: number, lastIndex: number }> {
  const metrics = await leader.get<string>('/metrics')
  const readies = Number(/^fedmesh_raft_ready_batches_total (\d+)/m.exec(metrics)?.[1] ?? NaN)
  const drops = [...metrics.matchAll(/^fedmesh_messages_dropped_total\{[^}]*\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0)
  return { readies, drops, lastIndex: (await leader.get<{ raft: RaftNodeStatus }>('/v1/status')).raft.lastIndex }
}

const fedmesh = await fedmeshRun()
const etcd = await etcdLevels(LEVELS, PAYLOAD, LOOP)
const comparison = compareWithEtcd(fedmesh.levels, etcd)
const loadavg = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).map(Number)
const path = await writeResult('raft', {
  seconds: SECONDS, target: TARGET, payloadBytes: PAYLOAD.length, loadavg, etcdVersion: etcdVersion(),
  fedmesh: fedmesh.levels, fedmeshEntriesPerLeaderBatch: fedmesh.entriesPerBatch, fedmeshLeaderMessagesDropped: fedmesh.leaderDrops, etcd, comparison
})
console.log(`wrote ${path}`)

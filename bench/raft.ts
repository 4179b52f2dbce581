// Raft benchmark: an org's task board in 3 fedmesh processes on loopback (LevelDB, every Ready one
// synced batch) against a 3-member etcd cluster on loopback (fsync on), same shape, same run:
// C closed-loop clients each awaiting its commit before the next, 256-byte payloads, spread
// round-robin over the 3 members. Prints ops/s, p50, p99, the fedmesh/etcd ratios, and where
// fedmesh's time goes: CPU per op in each process, and entries per synced write batch.
//   npm run bench:raft [-- --concurrency 1,16,64,256 --seconds 5]
// Installs Debian's etcd-server when etcd is missing (root, apt-get).
import '../node/polyfills.js'
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Etcd3 } from 'etcd3'
import { Agent, request } from 'undici'
import type { RaftNodeStatus } from '../node/raft-driver.js'
import { CLI, CliNode, waitFor } from '../test/helpers/cli-node.js'
import { percentile, round, writeResult } from './stats.js'

const { values: opts } = parseArgs({ options: { concurrency: { type: 'string', default: '1,16,64,256' }, seconds: { type: 'string', default: '5' }, 'payload-bytes': { type: 'string', default: '256' }, target: { type: 'string', default: 'all' } } })
const LEVELS = opts.concurrency.split(',').map(Number)
const SECONDS = Number(opts.seconds)
const PAYLOAD = 'x'.repeat(Number(opts['payload-bytes']))
const WARMUP_MS = 1000
/** 'all': round-robin over the 3 members (followers forward); 'leader': the leader's API only. */
const TARGET = opts.target === 'leader' ? 'leader' : 'all'
const TICKS_PER_SECOND = 100 // USER_HZ on Linux: /proc/<pid>/stat CPU times are in these

interface Level { concurrency: number, ops: number, opsPerSec: number, p50Ms: number, p99Ms: number, errors: number, cpuMsPerOp: number[] }
type Op = (worker: number, i: number) => Promise<void>

/** Runs C closed-loop workers for SECONDS after a warm-up; latencies of successful ops only. */
async function closedLoop (concurrency: number, op: Op, pids: number[]): Promise<Level> {
  const latencies: number[] = []
  let errors = 0
  let measuring = false
  let stop = false
  const worker = async (w: number): Promise<void> => {
    for (let i = 0; !stop; i++) {
      const t0 = performance.now()
      try {
        await op(w, i)
        if (measuring) latencies.push(performance.now() - t0)
      } catch {
        if (measuring) errors++
      }
    }
  }
  const workers = Array.from({ length: concurrency }, async (_, w) => await worker(w))
  await sleep(WARMUP_MS)
  const cpu0 = pids.map(cpuMs)
  const t0 = performance.now()
  measuring = true
  await sleep(SECONDS * 1000)
  measuring = false
  const elapsedMs = performance.now() - t0
  const cpu = pids.map((pid, i) => cpuMs(pid) - cpu0[i]!)
  stop = true
  await Promise.all(workers)
  const ops = latencies.length
  return {
    concurrency, ops, opsPerSec: round(ops / (elapsedMs / 1000), 1), p50Ms: round(percentile(latencies, 50)), p99Ms: round(percentile(latencies, 99)), errors,
    cpuMsPerOp: cpu.map((c) => round(c / Math.max(1, ops), 3))
  }
}

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
      const level = await closedLoop(c, op, nodes.map((n) => n.child.pid!))
      const after = await leaderCounters(leader)
      leaderDrops.push(after.drops - before.drops)
      entriesPerBatch.push(round((after.lastIndex - before.lastIndex) / Math.max(1, after.readies - before.readies)))
      levels.push(level)
      console.log(`fedmesh C=${c}: ${level.opsPerSec} ops/s, p50 ${level.p50Ms} ms, p99 ${level.p99Ms} ms, errors ${level.errors}, CPU ms/op per process ${level.cpuMsPerOp.join(' / ')}, entries per leader batch ${entriesPerBatch.at(-1)}, messages dropped by the leader ${leaderDrops.at(-1)}`)
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
  const readies = Number(/^fedmesh_raft_ready_batches (\d+)/m.exec(metrics)?.[1] ?? NaN)
  const drops = [...metrics.matchAll(/^fedmesh_messages_dropped\{[^}]*\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0)
  return { readies, drops, lastIndex: (await leader.get<{ raft: RaftNodeStatus }>('/v1/status')).raft.lastIndex }
}

async function etcdRun (): Promise<Level[]> {
  ensureEtcd()
  const root = await mkdtemp(join(tmpdir(), 'etcd-bench-'))
  const peers = [0, 1, 2].map((i) => `e${i}=http://127.0.0.1:${23800 + i}`).join(',')
  const procs: ChildProcess[] = [0, 1, 2].map((i) => spawn('etcd', [
    '--name', `e${i}`, '--data-dir', join(root, `e${i}`),
    '--listen-client-urls', `http://127.0.0.1:${23790 + i}`, '--advertise-client-urls', `http://127.0.0.1:${23790 + i}`,
    '--listen-peer-urls', `http://127.0.0.1:${23800 + i}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${23800 + i}`,
    '--initial-cluster', peers, '--initial-cluster-state', 'new', '--initial-cluster-token', 'bench', '--log-level', 'error'
  ], { stdio: 'ignore' }))
  const client = new Etcd3({ hosts: [0, 1, 2].map((i) => `http://127.0.0.1:${23790 + i}`) })
  try {
    await waitFor('etcd to serve', async () => { await client.put('ready').value('1'); return true }, 30_000, 200)
    const levels: Level[] = []
    for (const c of LEVELS) {
      const level = await closedLoop(c, async (w, i) => { await client.put(`w${w}-${i}`).value(PAYLOAD) }, procs.map((p) => p.pid!))
      levels.push(level)
      console.log(`etcd    C=${c}: ${level.opsPerSec} ops/s, p50 ${level.p50Ms} ms, p99 ${level.p99Ms} ms, errors ${level.errors}, CPU ms/op per process ${level.cpuMsPerOp.join(' / ')}`)
    }
    return levels
  } finally {
    client.close()
    for (const p of procs) p.kill('SIGKILL')
    await rm(root, { recursive: true, force: true })
  }
}

function ensureEtcd (): void {
  try {
    execFileSync('etcd', ['--version'], { stdio: 'ignore' })
  } catch {
    console.log('etcd is missing: installing Debian\'s etcd-server')
    execFileSync('apt-get', ['install', '-y', '-q', 'etcd-server'], { stdio: 'inherit' })
  }
}

function cpuMs (pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
    return (Number(fields[11]) + Number(fields[12])) * 1000 / TICKS_PER_SECOND
  } catch {
    return NaN
  }
}

async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

const fedmesh = await fedmeshRun()
const etcd = await etcdRun()
const comparison = LEVELS.map((c, i) => {
  const f = fedmesh.levels[i]!
  const e = etcd[i]!
  return { concurrency: c, throughputRatio: round(f.opsPerSec / e.opsPerSec), p50Ratio: round(f.p50Ms / e.p50Ms), p99Ratio: round(f.p99Ms / e.p99Ms) }
})
for (const r of comparison) console.log(`C=${r.concurrency}: fedmesh/etcd throughput ×${r.throughputRatio}, p50 ×${r.p50Ratio}, p99 ×${r.p99Ratio}`)
const loadavg = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).map(Number)
const path = await writeResult('raft', {
  seconds: SECONDS, target: TARGET, payloadBytes: PAYLOAD.length, loadavg, etcdVersion: execFileSync('etcd', ['--version']).toString().split('\n')[0],
  fedmesh: fedmesh.levels, fedmeshEntriesPerLeaderBatch: fedmesh.entriesPerBatch, fedmeshLeaderMessagesDropped: fedmesh.leaderDrops, etcd, comparison
})
console.log(`wrote ${path}`)

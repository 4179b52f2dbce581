// PBFT benchmark: federations of 4 orgs × 1 node and 4 orgs × 3 nodes (each org one Raft group whose
// leader hosts the org's replica), each node a `fedmesh start` process on loopback (LevelDB, synced
// writes), against the 3-member etcd cluster of the Raft benchmark, same run: C closed-loop clients
// each awaiting its cross-org task (POST /v1/federation/tasks answers once f+1 orgs applied it),
// 256-byte payloads, round-robin over every node. Prints ops/s, p50, p99, the fedmesh/etcd ratios,
// CPU per op in each process and tasks per PBFT sequence (batching).
// Then the stall: C=16 over every other node, SIGKILL the node hosting the primary's replica (4 × 1:
// the org's only node, a PBFT view change; 4 × 3: the org's Raft leader, a Raft failover after which
// the next leader resumes the replica), and measure the longest gap between consecutive completions
// and the first completion of a task sent after the kill.
//   npm run bench:pbft [-- --orgs-nodes 1,3 --concurrency 1,16,64,256 --seconds 10 --stall-concurrency 16 --stall-seconds 15]
// The windows are long enough (10 s) that a collapse under load shows as a number, not as a missing sample.
import '../node/runtime/polyfills.js'
import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { PBFT_PARAMS_DEFAULT } from '../node/federation/genesis.js'
import { type CliNode, waitFor } from '../test/helpers/cli-node.js'
import { ProcessFederation, federationOf } from '../test/helpers/federation-processes.js'
import { closedLoop, describeLevel, sleep, type Level, type Op } from './closed-loop.js'
import { compareWithEtcd, etcdLevels, etcdVersion, type Comparison } from './etcd-baseline.js'
import { round, writeResult } from './stats.js'

const { values: opts } = parseArgs({
  options: {
    'orgs-nodes': { type: 'string', default: '1,3' },
    concurrency: { type: 'string', default: '1,16,64,256' },
    seconds: { type: 'string', default: '10' },
    'payload-bytes': { type: 'string', default: '256' },
    'stall-concurrency': { type: 'string', default: '16' },
    'stall-seconds': { type: 'string', default: '15' }
  }
})
const SHAPES = opts['orgs-nodes'].split(',').map(Number)
const LEVELS = opts.concurrency.split(',').map(Number)
const SECONDS = Number(opts.seconds)
const PAYLOAD = 'x'.repeat(Number(opts['payload-bytes']))
const STALL_CONCURRENCY = Number(opts['stall-concurrency'])
const STALL_SECONDS = Number(opts['stall-seconds'])
const LOOP = { warmupMs: 1000, seconds: SECONDS }
const ORGS = 4
/** Steady load before the kill, after the ramp-up, so the gap measured is the kill's and not the ramp-up's. */
const STALL_STEADY_MS = 3000
const STALL_RAMP_MS_MAX = 30_000
/** Bounds each stall worker; a task takes at least a few ms, so time ends the loop first. */
const STALL_OPS_PER_WORKER_MAX = 100_000

interface Stall {
  concurrency: number
  killedOrg: string
  /** 'node' (4 × 1: a PBFT view change) or 'raft-leader' (4 × 3: a Raft failover inside the org). */
  killed: 'node' | 'raft-leader'
  viewChangeTimeoutMs: number
  longestGapMs: number
  /** From the kill to the first completion of a task sent after it. */
  firstCompletionAfterKillMs: number
  opsPerSecBefore: number
  /** Over the last half of the time after the kill. */
  opsPerSecAfter: number
  errors: number
  viewAfter: number
  viewChanges: number
}

async function propose (f: ProcessFederation, node: CliNode, title: string): Promise<void> {
  await f.propose(node, { title, capability: 'bench', payload: PAYLOAD })
}

/** The highest sequence any running replica executed (a 3-node org's replica lives on its leader only). */
async function executedSeq (f: ProcessFederation): Promise<number> {
  const statuses = await Promise.all(f.running().map(async (n) => await federationOf(n).catch(() => undefined)))
  return Math.max(0, ...statuses.map((s) => s?.pbft?.lastExecuted ?? 0))
}

async function throughputRun (f: ProcessFederation): Promise<{ levels: Level[], tasksPerSequence: number[], errorSamples: string[] }> {
  const levels: Level[] = []
  const tasksPerSequence: number[] = []
  const errorSamples = new Set<string>()
  for (const c of LEVELS) {
    let completed = 0
    const op: Op = async (w, i) => {
      try {
        await propose(f, f.nodes[(w + i) % f.nodes.length]!, `w${w}-${i}`)
        completed++
      } catch (err) {
        if (errorSamples.size < 5) errorSamples.add((err as Error).message)
        throw err
      }
    }
    const before = await executedSeq(f)
    const level = await closedLoop(c, op, f.nodes.map((n) => n.child.pid!), LOOP)
    const after = await executedSeq(f)
    tasksPerSequence.push(round(completed / Math.max(1, after - before)))
    levels.push(level)
    console.log(`${describeLevel('fedmesh', level)}, tasks per PBFT sequence ${tasksPerSequence.at(-1)}`)
  }
  return { levels, tasksPerSequence, errorSamples: [...errorSamples] }
}

/** Steady load over the other nodes, SIGKILL the node hosting the primary's replica, then how long completions stop. */
async function stallRun (f: ProcessFederation): Promise<Stall> {
  const { org, host } = await f.primary()
  const others = f.nodes.filter((n) => n !== host)
  const ops: Array<{ startMs: number, endMs: number }> = []
  let errors = 0
  let stop = false
  const worker = async (w: number): Promise<void> => {
    for (let i = 0; !stop && i < STALL_OPS_PER_WORKER_MAX; i++) {
      const startMs = performance.now()
      try {
        await propose(f, others[(w + i) % others.length]!, `stall-w${w}-${i}`)
        ops.push({ startMs, endMs: performance.now() })
      } catch {
        errors++
      }
    }
  }
  const workers = Array.from({ length: STALL_CONCURRENCY }, async (_, w) => await worker(w))
  // Ramp-up (a 4 × 3 task takes seconds under load): every worker done once, then steady load.
  await waitFor('the stall load to ramp up', () => ops.length >= STALL_CONCURRENCY, STALL_RAMP_MS_MAX, 50).catch(() => undefined)
  const fromMs = performance.now()
  await sleep(STALL_STEADY_MS)
  const killMs = performance.now()
  await host.kill('SIGKILL')
  await sleep(STALL_SECONDS * 1000)
  const endMs = performance.now()
  stop = true
  await Promise.all(workers)
  const after = (await f.primary()).status

  // Gaps from the end of the ramp-up to the end: the kill's gap included.
  const ends = [fromMs, ...ops.map((o) => o.endMs).filter((e) => e >= fromMs && e <= endMs), endMs].sort((a, b) => a - b)
  let longestGapMs = 0
  for (let i = 1; i < ends.length; i++) longestGapMs = Math.max(longestGapMs, ends[i]! - ends[i - 1]!)
  const firstAfter = Math.min(...ops.filter((o) => o.startMs >= killMs).map((o) => o.endMs))
  const count = (fromMs: number, toMs: number): number => ops.filter((o) => o.endMs >= fromMs && o.endMs < toMs).length
  const halfMs = (endMs - killMs) / 2
  return {
    concurrency: STALL_CONCURRENCY,
    killedOrg: org,
    killed: f.nodesOf(org).length > 1 ? 'raft-leader' : 'node',
    viewChangeTimeoutMs: PBFT_PARAMS_DEFAULT.viewChangeTimeoutMs,
    longestGapMs: round(longestGapMs),
    firstCompletionAfterKillMs: round(firstAfter - killMs),
    opsPerSecBefore: round(count(fromMs, killMs) / ((killMs - fromMs) / 1000), 1),
    opsPerSecAfter: round(count(killMs + halfMs, endMs) / (halfMs / 1000), 1),
    errors,
    viewAfter: after.pbft!.view,
    viewChanges: after.pbft!.viewChanges
  }
}

interface Shape {
  nodesPerOrg: number
  fedmesh: Level[]
  fedmeshTasksPerPbftSequence: number[]
  fedmeshErrorSamples: string[]
  stall: Stall
  comparison?: Comparison[]
  targets?: Record<string, boolean | null>
}

async function shapeRun (nodesPerOrg: number): Promise<Shape> {
  console.log(`--- ${ORGS} orgs × ${nodesPerOrg} node${nodesPerOrg > 1 ? 's' : ''}`)
  const federation = await ProcessFederation.start({ nodesPerOrg })
  try {
    const throughput = await throughputRun(federation)
    const stall = await stallRun(federation)
    console.log(`stall: killed ${stall.killedOrg}'s ${stall.killed === 'node' ? 'node' : 'Raft leader'} (hosting the primary) under C=${stall.concurrency}: longest gap ${stall.longestGapMs} ms, first new task done ${stall.firstCompletionAfterKillMs} ms after the kill, ${stall.opsPerSecBefore} ops/s before, ${stall.opsPerSecAfter} after, view ${stall.viewAfter} (${stall.viewChanges} view changes), errors ${stall.errors}`)
    return { nodesPerOrg, fedmesh: throughput.levels, fedmeshTasksPerPbftSequence: throughput.tasksPerSequence, fedmeshErrorSamples: throughput.errorSamples, stall }
  } finally {
    await federation.stop()
  }
}

const shapes: Shape[] = []
for (const nodesPerOrg of SHAPES) shapes.push(await shapeRun(nodesPerOrg))
const etcd = await etcdLevels(LEVELS, PAYLOAD, LOOP)
for (const shape of shapes) {
  console.log(`--- ${ORGS} × ${shape.nodesPerOrg} against etcd`)
  shape.comparison = compareWithEtcd(shape.fedmesh, etcd)
  const at = (c: number): { f?: Level, e?: Level } => ({ f: shape.fedmesh.find((l) => l.concurrency === c), e: etcd.find((l) => l.concurrency === c) })
  shape.targets = {
    throughputC64AtLeastEtcd: at(64).f !== undefined ? at(64).f!.opsPerSec >= at(64).e!.opsPerSec : null,
    latencyC1AtMost3xEtcd: at(1).f !== undefined ? at(1).f!.p50Ms <= 3 * at(1).e!.p50Ms : null,
    stallAtMost3s: shape.stall.longestGapMs <= 3000
  }
  console.log(`targets: ${JSON.stringify(shape.targets)}`)
}
const loadavg = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).map(Number)
const path = await writeResult('pbft', {
  orgs: ORGS, seconds: SECONDS, payloadBytes: PAYLOAD.length, loadavg, etcdVersion: etcdVersion(),
  shapes, etcd
})
console.log(`wrote ${path}`)

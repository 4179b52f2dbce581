// PBFT benchmark: a federation of 4 orgs × 1 node, each a `fedmesh start` process on loopback
// (LevelDB, synced writes), against the 3-member etcd cluster of the Raft benchmark, same run:
// C closed-loop clients each awaiting its cross-org task (POST /v1/federation/tasks answers once
// f+1 orgs applied it), 256-byte payloads, round-robin over the 4 nodes. Prints ops/s, p50, p99,
// the fedmesh/etcd ratios, CPU per op in each process and tasks per PBFT sequence (batching).
// Then the view-change stall: C=16 over the 3 backups, SIGKILL the primary's node, and measure
// the longest gap between consecutive completions and the first completion of a task sent after
// the kill.
//   npm run bench:pbft [-- --concurrency 1,16,64 --seconds 5 --stall-concurrency 16 --stall-seconds 15]
import '../node/polyfills.js'
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Agent, request } from 'undici'
import type { FederationStatus } from '../node/federation.js'
import { PBFT_PARAMS_DEFAULT, createGenesis, writeGenesis } from '../node/genesis.js'
import { loadOrCreateIdentity, type NodeIdentity } from '../node/identity.js'
import { ORG_ROOT_KEY_FILE } from '../node/org-identity.js'
import { CliNode, waitFor } from '../test/helpers/cli-node.js'
import { closedLoop, describeLevel, sleep, type Level, type Op } from './closed-loop.js'
import { compareWithEtcd, etcdLevels, etcdVersion } from './etcd-baseline.js'
import { round, writeResult } from './stats.js'

const { values: opts } = parseArgs({
  options: {
    concurrency: { type: 'string', default: '1,16,64' },
    seconds: { type: 'string', default: '5' },
    'payload-bytes': { type: 'string', default: '256' },
    'stall-concurrency': { type: 'string', default: '16' },
    'stall-seconds': { type: 'string', default: '15' }
  }
})
const LEVELS = opts.concurrency.split(',').map(Number)
const SECONDS = Number(opts.seconds)
const PAYLOAD = 'x'.repeat(Number(opts['payload-bytes']))
const STALL_CONCURRENCY = Number(opts['stall-concurrency'])
const STALL_SECONDS = Number(opts['stall-seconds'])
const LOOP = { warmupMs: 1000, seconds: SECONDS }
const ORGS = ['alpha', 'bravo', 'charlie', 'delta']
/** Steady load before the kill, so the gap measured is the kill's and not the ramp-up's. */
const STALL_STEADY_MS = 3000
/** Bounds each stall worker; a task takes at least a few ms, so time ends the loop first. */
const STALL_OPS_PER_WORKER_MAX = 100_000
/** Above the node's own 30 s proposal timeout, so a hung request still ends. */
const HTTP_TIMEOUT_MS = 45_000

interface Stall {
  concurrency: number
  killedOrg: string
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

interface Federated { nodes: CliNode[], names: string[], agent: Agent, root: string }

async function startFederation (): Promise<Federated> {
  const root = await mkdtemp(join(tmpdir(), 'fedmesh-bench-pbft-'))
  // Each org's root key is made first so one genesis can name them all; `start --org` then founds
  // the org with that root and loads the genesis on its first start.
  const roots: NodeIdentity[] = []
  for (const name of ORGS) {
    await mkdir(join(root, name), { recursive: true })
    roots.push((await loadOrCreateIdentity(join(root, name), ORG_ROOT_KEY_FILE)).identity)
  }
  const genesis = createGenesis(roots[0]!, ORGS.map((name, i) => ({ name, root: roots[i]!.publicKeyHex })), Date.now())
  for (const name of ORGS) await writeGenesis(join(root, name), genesis)
  const nodes: CliNode[] = []
  const federated = { nodes, names: ORGS, agent: new Agent({ connections: 512, headersTimeout: HTTP_TIMEOUT_MS, bodyTimeout: HTTP_TIMEOUT_MS }), root }
  try {
    nodes.push(await CliNode.start(join(root, ORGS[0]!), ['--org', ORGS[0]!]))
    for (const name of ORGS.slice(1)) nodes.push(await CliNode.start(join(root, name), ['--org', name, '--bootstrap', nodes[0]!.address]))
    await waitFor('every node to host its org\'s replica', async () => (await Promise.all(nodes.map(federationOf))).every((f) => f.hosting && f.pbft?.active === true), 30_000, 200)
    // The first task also waits for the gossip mesh to reach every replica.
    await propose(federated, nodes[0]!, 'warm-up')
    return federated
  } catch (err) {
    await stopFederation(federated)
    throw err
  }
}

async function stopFederation (f: Federated): Promise<void> {
  await f.agent.close()
  await Promise.all(f.nodes.map(async (n) => { if (n.child.exitCode === null && n.child.signalCode === null) await n.kill('SIGKILL') }))
  await rm(f.root, { recursive: true, force: true })
}

async function federationOf (n: CliNode): Promise<FederationStatus> {
  return await n.get<FederationStatus>('/v1/federation')
}

async function propose (f: Federated, node: CliNode, title: string): Promise<void> {
  const res = await request(`${node.runtime.api}/v1/federation/tasks`, {
    method: 'POST', dispatcher: f.agent,
    headers: { authorization: `Bearer ${node.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ title, capability: 'bench', payload: PAYLOAD })
  })
  const body = await res.body.text()
  if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}: ${body.slice(0, 200)}`)
}

async function throughputRun (f: Federated): Promise<{ levels: Level[], tasksPerSequence: number[], errorSamples: string[] }> {
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
    const before = (await federationOf(f.nodes[0]!)).pbft!.lastExecuted
    const level = await closedLoop(c, op, f.nodes.map((n) => n.child.pid!), LOOP)
    const after = (await federationOf(f.nodes[0]!)).pbft!.lastExecuted
    tasksPerSequence.push(round(completed / Math.max(1, after - before)))
    levels.push(level)
    console.log(`${describeLevel('fedmesh', level)}, tasks per PBFT sequence ${tasksPerSequence.at(-1)}`)
  }
  return { levels, tasksPerSequence, errorSamples: [...errorSamples] }
}

/** Steady load over the backups, SIGKILL the primary's node, then how long completions stop. */
async function stallRun (f: Federated): Promise<Stall> {
  const status = await federationOf(f.nodes[0]!)
  const primary = status.pbft!.primary
  const statuses = await Promise.all(f.nodes.map(federationOf))
  const primaryIndex = statuses.findIndex((s) => s.replica === primary)
  assert(primaryIndex >= 0, `no node hosts the primary ${primary}`)
  const backups = f.nodes.filter((_, i) => i !== primaryIndex)
  const ops: Array<{ startMs: number, endMs: number }> = []
  let errors = 0
  let stop = false
  const worker = async (w: number): Promise<void> => {
    for (let i = 0; !stop && i < STALL_OPS_PER_WORKER_MAX; i++) {
      const startMs = performance.now()
      try {
        await propose(f, backups[(w + i) % backups.length]!, `stall-w${w}-${i}`)
        ops.push({ startMs, endMs: performance.now() })
      } catch {
        errors++
      }
    }
  }
  const t0 = performance.now()
  const workers = Array.from({ length: STALL_CONCURRENCY }, async (_, w) => await worker(w))
  await sleep(STALL_STEADY_MS)
  const killMs = performance.now()
  await f.nodes[primaryIndex]!.kill('SIGKILL')
  await sleep(STALL_SECONDS * 1000)
  const endMs = performance.now()
  stop = true
  await Promise.all(workers)
  const after = await federationOf(backups[0]!)

  // Gaps from the end of the ramp-up (half the steady time) to the end: the kill's gap included.
  const fromMs = t0 + STALL_STEADY_MS / 2
  const ends = [fromMs, ...ops.map((o) => o.endMs).filter((e) => e >= fromMs && e <= endMs), endMs].sort((a, b) => a - b)
  let longestGapMs = 0
  for (let i = 1; i < ends.length; i++) longestGapMs = Math.max(longestGapMs, ends[i]! - ends[i - 1]!)
  const firstAfter = Math.min(...ops.filter((o) => o.startMs >= killMs).map((o) => o.endMs))
  const count = (fromMs: number, toMs: number): number => ops.filter((o) => o.endMs >= fromMs && o.endMs < toMs).length
  const halfMs = (endMs - killMs) / 2
  return {
    concurrency: STALL_CONCURRENCY,
    killedOrg: statuses[primaryIndex]!.orgs.find((o) => o.root === primary)?.name ?? primary,
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

const federation = await startFederation()
let throughput: Awaited<ReturnType<typeof throughputRun>>
let stall: Stall
try {
  throughput = await throughputRun(federation)
  stall = await stallRun(federation)
  console.log(`view change: killed ${stall.killedOrg}'s node (the primary) under C=${stall.concurrency}: longest gap ${stall.longestGapMs} ms, first new task done ${stall.firstCompletionAfterKillMs} ms after the kill, ${stall.opsPerSecBefore} ops/s before, ${stall.opsPerSecAfter} after, view ${stall.viewAfter} (${stall.viewChanges} view changes), errors ${stall.errors}`)
} finally {
  await stopFederation(federation)
}
const etcd = await etcdLevels(LEVELS, PAYLOAD, LOOP)
const comparison = compareWithEtcd(throughput.levels, etcd)
const at = (c: number): { f?: Level, e?: Level } => ({ f: throughput.levels.find((l) => l.concurrency === c), e: etcd.find((l) => l.concurrency === c) })
const targets = {
  throughputC64AtLeastEtcd: at(64).f !== undefined ? at(64).f!.opsPerSec >= at(64).e!.opsPerSec : null,
  latencyC1AtMost3xEtcd: at(1).f !== undefined ? at(1).f!.p50Ms <= 3 * at(1).e!.p50Ms : null,
  viewChangeStallAtMost3s: stall.longestGapMs <= 3000
}
console.log(`targets: ${JSON.stringify(targets)}`)
const loadavg = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).map(Number)
const path = await writeResult('pbft', {
  orgs: ORGS.length, nodesPerOrg: 1, seconds: SECONDS, payloadBytes: PAYLOAD.length, loadavg, etcdVersion: etcdVersion(),
  fedmesh: throughput.levels, fedmeshTasksPerPbftSequence: throughput.tasksPerSequence, fedmeshErrorSamples: throughput.errorSamples,
  stall, etcd, comparison, targets
})
console.log(`wrote ${path}`)

// Idle cost: a federation of 4 orgs × N nodes (`fedmesh start` processes on loopback) doing
// nothing but staying alive — heartbeats, gossip, Raft and PBFT ticks, anchors — and the CPU each
// process spends on it (from /proc, after the federation formed), in % of one core.
//   npm run bench:idle [-- --orgs-nodes 1,3 --seconds 10]
import '../node/runtime/polyfills.js'
import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { ProcessFederation } from '../test/helpers/federation-processes.js'
import { round, writeResult } from './stats.js'

const { values: opts } = parseArgs({ options: { 'orgs-nodes': { type: 'string', default: '1,3' }, seconds: { type: 'string', default: '10' } } })
const SECONDS = Number(opts.seconds)
/** After the federation formed: joins, genesis and first elections are not idle. */
const SETTLE_MS = 3000
const TICKS_PER_SECOND = 100   // USER_HZ on Linux

async function cpuTicks (pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ')
  return Number(fields[11]) + Number(fields[12])   // utime + stime
}

const shapes: Array<{ nodesPerOrg: number, percentOfCorePerProcess: number[], mean: number }> = []
for (const nodesPerOrg of opts['orgs-nodes'].split(',').map(Number)) {
  const federation = await ProcessFederation.start({ nodesPerOrg })
  try {
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS))
    const pids = federation.nodes.map((n) => n.child.pid!)
    const before = await Promise.all(pids.map(cpuTicks))
    await new Promise((resolve) => setTimeout(resolve, SECONDS * 1000))
    const after = await Promise.all(pids.map(cpuTicks))
    const percent = after.map((a, i) => round((a - before[i]!) * 100 / TICKS_PER_SECOND / SECONDS))
    const mean = round(percent.reduce((x, y) => x + y, 0) / percent.length)
    console.log(`4 × ${nodesPerOrg}: idle CPU per process ${percent.join(' / ')} % of a core (mean ${mean}%)`)
    shapes.push({ nodesPerOrg, percentOfCorePerProcess: percent, mean })
  } finally {
    await federation.stop()
  }
}
const loadavg = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).map(Number)
console.log(`wrote ${await writeResult('idle', { seconds: SECONDS, loadavg, shapes })}`)

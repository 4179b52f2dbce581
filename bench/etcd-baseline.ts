import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Etcd3 } from 'etcd3'
import { waitFor } from '../test/helpers/cli-node.js'
import { closedLoop, describeLevel, type Level, type LoopOptions } from './closed-loop.js'
import { round } from './stats.js'

// The baseline the consensus benchmarks compare against: a 3-member etcd cluster on loopback
// (fsync on), driven by the same closed loop with puts of the same payload.
// Installs Debian's etcd-server when etcd is missing (root, apt-get).

export interface Comparison { concurrency: number, throughputRatio: number, p50Ratio: number, p99Ratio: number }

export async function etcdLevels (levels: number[], payload: string, options: LoopOptions): Promise<Level[]> {
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
    const results: Level[] = []
    for (const c of levels) {
      const level = await closedLoop(c, async (w, i) => { await client.put(`w${w}-${i}`).value(payload) }, procs.map((p) => p.pid!), options)
      results.push(level)
      console.log(describeLevel('etcd   ', level))
    }
    return results
  } finally {
    client.close()
    for (const p of procs) p.kill('SIGKILL')
    await rm(root, { recursive: true, force: true })
  }
}

export function etcdVersion (): string {
  return execFileSync('etcd', ['--version']).toString().split('\n')[0]!
}

/** fedmesh/etcd ratios per concurrency level, printed and returned. */
export function compareWithEtcd (fedmesh: Level[], etcd: Level[]): Comparison[] {
  return fedmesh.map((f, i) => {
    const e = etcd[i]!
    const r = { concurrency: f.concurrency, throughputRatio: round(f.opsPerSec / e.opsPerSec, 4), p50Ratio: round(f.p50Ms / e.p50Ms), p99Ratio: round(f.p99Ms / e.p99Ms) }
    console.log(`C=${r.concurrency}: fedmesh/etcd throughput ×${r.throughputRatio}, p50 ×${r.p50Ratio}, p99 ×${r.p99Ratio}`)
    return r
  })
}

function ensureEtcd (): void {
  try {
    execFileSync('etcd', ['--version'], { stdio: 'ignore' })
  } catch {
    console.log('etcd is missing: installing Debian\'s etcd-server')
    execFileSync('apt-get', ['install', '-y', '-q', 'etcd-server'], { stdio: 'inherit' })
  }
}

import '../../../node/runtime/polyfills.js'
import assert from 'node:assert/strict'
import { execFile, execFileSync } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { silentLogger } from '../../../base/log.js'
import { FedmeshNode } from '../../../node/node.js'
import { METRICS_TOKEN_FILE } from '../../../node/runtime/data-dir.js'
import { mirroredCounter } from '../../../node/runtime/metrics.js'
import { registerFederationMetrics } from '../../../node/federation/metrics.js'
import type { FederationStatus } from '../../../node/federation/federation.js'

// /metrics as Prometheus reads it: cumulative counts are counters named *_total, levels are
// gauges, no doubled prefix, every sample belongs to a declared family; and `promtool check
// metrics` (Debian's prometheus package, which .ci/run installs) finds nothing to say.

/** name → type, from the exposition's # TYPE lines. */
function families (text: string): Map<string, string> {
  return new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]))
}

function hasPromtool (): boolean {
  try {
    execFileSync('promtool', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

describe('/metrics', function () {
  this.timeout(30_000)
  let dir: string
  let node: FedmeshNode
  let text: string

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fedmesh-metrics-'))
    node = await FedmeshNode.start({ dataDir: dir, org: 'acme', listen: ['/ip4/127.0.0.1/tcp/0'], api: { host: '127.0.0.1', port: 0 }, logger: silentLogger })
    await node.propose({ title: 'one', capability: 'ops' })
    await node.propose({ title: 'two', capability: 'ops' })
    const token = (await readFile(join(dir, METRICS_TOKEN_FILE), 'utf8')).trim()
    const res = await fetch(node.apiUrl! + '/metrics', { headers: { authorization: `Bearer ${token}` } })
    assert.equal(res.status, 200)
    text = await res.text()
  })

  after(async () => {
    await node?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('types cumulative counts as counters named *_total and levels as gauges', () => {
    const types = families(text)
    for (const name of ['fedmesh_envelopes_total', 'fedmesh_raft_messages_total', 'fedmesh_raft_ready_batches_total', 'fedmesh_messages_dropped_total',
      'fedmesh_federation_tasks_dropped_total', 'fedmesh_revoked_refusals_total', 'process_cpu_seconds_total']) {
      assert.equal(types.get(name), 'counter', name)
    }
    for (const name of ['fedmesh_peers_connected', 'fedmesh_members', 'fedmesh_raft_term', 'fedmesh_raft_leader', 'fedmesh_raft_commit_index', 'fedmesh_raft_applied_index']) {
      assert.equal(types.get(name), 'gauge', name)
    }
    assert.equal(types.get('fedmesh_gossip_latency_seconds'), 'histogram')
    for (const [name, type] of types) assert.equal(name.endsWith('_total'), type === 'counter', `${name} is a ${type}`)
    assert.deepEqual([...types.keys()].filter((name) => name.includes('process_process_')), [])
    assert.ok(Number(/^fedmesh_raft_ready_batches_total (\d+)$/m.exec(text)?.[1]) > 0)
    assert.ok(Number(/^fedmesh_raft_messages_total\{result="sent"\} (\d+)$/m.exec(text)?.[1]) >= 0)
  })

  it('declares the family of every sample', () => {
    const types = families(text)
    const undeclared = text.split('\n').filter((line) => line !== '' && !line.startsWith('#')).map((line) => /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)![0])
      .filter((name) => !types.has(name) && !(types.get(name.replace(/_(bucket|sum|count)$/, '')) === 'histogram'))
    assert.deepEqual(undeclared, [])
  })

  it('has every metric the Grafana dashboard (docs/grafana-dashboard.json) queries', async () => {
    // A federated node also registers the federation's metrics: what a member's node exports.
    const federated = new Registry()
    const status = { epoch: 0, orgs: [], hosting: true, pbft: { view: 0, lastExecuted: 0, viewChanges: 0, pendingRequests: 0 }, received: 0, sent: 0, rejected: {} } as unknown as FederationStatus
    registerFederationMetrics(federated, () => status)
    const types = new Map([...families(text), ...families(await federated.metrics())])
    const dashboard = JSON.parse(await readFile(new URL('../../../docs/grafana-dashboard.json', import.meta.url), 'utf8')) as { panels: Array<{ targets?: Array<{ expr: string }> }> }
    const queried = new Set(dashboard.panels.flatMap((p) => p.targets ?? []).flatMap((t) => [...t.expr.matchAll(/\b((?:fedmesh|process|nodejs)_[a-z0-9_]+)/g)].map((m) => m[1]!)))
    assert.ok(queried.size >= 20, `only ${queried.size} metrics queried`)
    assert.deepEqual([...queried].filter((name) => !types.has(name) && types.get(name.replace(/_bucket$/, '')) !== 'histogram'), [])
  })

  it('passes promtool check metrics', async () => {
    assert.ok(hasPromtool(), 'promtool is missing: apt-get install -y prometheus (.ci/run installs it)')
    const lint = await new Promise<{ code: number | null, output: string }>((resolve) => {
      const child = execFile('promtool', ['check', 'metrics'], (err, stdout, stderr) => resolve({ code: err === null ? 0 : (err as { code?: number }).code ?? 1, output: stdout + stderr }))
      child.stdin!.end(text)
    })
    assert.deepEqual(lint, { code: 0, output: '' })
  })
})

describe('mirroredCounter', () => {
  it('adds what the source count grew by, and all of a count that restarted, never going down', async () => {
    const registry = new Registry()
    let count = 3
    mirroredCounter(registry, 'fedmesh_test_total', 'test', ['kind'], () => [{ labels: { kind: 'a' }, count }])
    const value = async (): Promise<number> => Number(/^fedmesh_test_total\{kind="a"\} (\d+)$/m.exec(await registry.metrics())?.[1])
    assert.equal(await value(), 3)
    count = 5
    assert.equal(await value(), 5)
    count = 2   // the component counting was recreated
    assert.equal(await value(), 7)
    assert.equal(await value(), 7)
    assert.throws(() => mirroredCounter(registry, 'fedmesh_test', 'test', [], () => []), /must end in _total/)
  })
})

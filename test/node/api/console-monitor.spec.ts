import assert from 'node:assert/strict'
import type { Clock } from '../../../base/clock.js'
import { silentLogger } from '../../../base/log.js'
import { ConsoleMonitor, SAMPLES_MAX, VERIFY_INTERVAL_MS, type MonitoredNode } from '../../../node/api/console-monitor.js'
import type { RaftNodeStatus } from '../../../consensus/raft/driver.js'
import type { FederationStatus } from '../../../node/federation/federation.js'
import type { PbftStatus } from '../../../consensus/pbft/pbft.js'
import type { AuditVerifyResult } from '../../../node/gate/audit.js'

// The console's memory of the last minutes (trust, Raft and PBFT progress, view changes), bounded;
// and the audit verification it runs only when asked, one at a time, not more often than every
// VERIFY_INTERVAL_MS, and only when the log grew.

function setUp (): { monitor: ConsoleMonitor, world: { nowMs: number, view: number | undefined, commit: number, head: number, verifies: number } } {
  const world = { nowMs: 1_000_000, view: undefined as number | undefined, commit: 1, head: 4, verifies: 0 }
  const clock: Clock = { monotonicMs: () => world.nowMs, wallMs: () => world.nowMs, every: () => () => {}, sleep: async () => {}, yield: async () => {} }
  const pbft = (): PbftStatus => ({ id: 'i', view: world.view!, active: true, primary: `org${world.view!}`, lowWatermark: 0, highWatermark: 128, lastExecuted: 7, pendingRequests: 0, viewChanges: 0, caughtUp: 0, rejected: {} })
  const node: MonitoredNode = {
    trust: () => [{ peer: 'p1', score: 0.123456, quarantined: false, banned: false, updatedMs: 0, events: [] }],
    raftStatus: () => ({ commit: world.commit, applied: world.commit } as RaftNodeStatus),
    federationStatus: () => ({ ...(world.view !== undefined ? { pbft: pbft() } : {}) } as FederationStatus),
    auditLog: {
      get head () { return { seq: world.head, hash: 'h' } },
      verify: async (): Promise<AuditVerifyResult> => { world.verifies++; return { ok: true, count: world.head, headHash: 'h' } }
    }
  }
  return { monitor: new ConsoleMonitor({ node, clock, logger: silentLogger }), world }
}

describe('ConsoleMonitor', () => {
  it('keeps the last SAMPLES_MAX samples and the view changes of the replica hosted here', () => {
    const { monitor, world } = setUp()
    for (let i = 0; i < SAMPLES_MAX + 5; i++) {
      world.nowMs += 1000
      world.commit++
      world.view = i < 10 ? undefined : i < 20 ? 0 : 1
      monitor.sample()
    }
    const samples = monitor.samples()
    assert.equal(samples.length, SAMPLES_MAX)
    assert.equal(samples.at(-1)!.commit, world.commit)
    assert.deepEqual(samples.at(-1)!.trust, { p1: 0.1235 })
    assert.deepEqual(monitor.samples(world.nowMs - 2000).map((s) => s.tMs), [world.nowMs - 1000, world.nowMs])
    // Hosting began (undefined → 0) is not a view change; 0 → 1 is.
    assert.deepEqual(monitor.viewChanges().map((v) => [v.from, v.to, v.primary]), [[0, 1, 'org1']])
  })

  it('verifies the audit log when asked, again only once the log grew and VERIFY_INTERVAL_MS passed', async () => {
    const { monitor, world } = setUp()
    assert.equal(monitor.verification().state, 'running')
    assert.equal(monitor.verification().state, 'running', 'one verification at a time')
    await new Promise((resolve) => setImmediate(resolve))
    const done = monitor.verification()
    assert.ok(done.state === 'done' && done.result.ok && done.head.seq === 4)
    assert.equal(world.verifies, 1)
    world.nowMs += VERIFY_INTERVAL_MS
    monitor.verification()
    assert.equal(world.verifies, 1, 'the log did not grow')
    world.head = 9
    world.nowMs -= 1
    monitor.verification()
    assert.equal(world.verifies, 1, 'too soon')
    world.nowMs += 1
    assert.equal(monitor.verification().state, 'running')
    await new Promise((resolve) => setImmediate(resolve))
    const again = monitor.verification()
    assert.ok(again.state === 'done' && again.head.seq === 9)
    assert.equal(world.verifies, 2)
  })
})

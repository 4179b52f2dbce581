import assert from 'node:assert/strict'
import { silentLogger } from '../../../base/log.js'
import type { AuditInput } from '../../../node/gate/audit.js'
import { RejectionAudit } from '../../../node/gate/rejection-audit.js'
import { manualClock } from './audit-helpers.js'

describe('rejection audit: bounded entries for repeatable rejections', () => {
  const setUp = (keysMax?: number): { rejections: RejectionAudit, entries: AuditInput[] } => {
    const entries: AuditInput[] = []
    const rejections = new RejectionAudit({ audit: async (input) => { entries.push(input) }, clock: manualClock(), logger: silentLogger, windowMs: 60_000, ...(keysMax !== undefined ? { keysMax } : {}) })
    return { rejections, entries }
  }
  const replay = (peer: string): AuditInput => ({ action: 'capability.request', decision: 'reject', peer, detail: { reason: 'replay' } })

  it('audits the first rejection per peer and reason in full, then one count per window', async () => {
    const { rejections, entries } = setUp()
    for (let i = 0; i < 300; i++) await rejections.record(replay('aa'), 'replay')
    await rejections.record({ ...replay('aa'), detail: { reason: 'stale' } }, 'stale')
    assert.deepEqual(entries.map((e) => e.detail?.reason), ['replay', 'stale'])
    await rejections.flush()
    assert.equal(entries.length, 3)
    assert.deepEqual([entries[2]!.action, entries[2]!.peer, entries[2]!.detail], ['audit.repeated', 'aa', { action: 'capability.request', reason: 'replay', count: '299', windowMs: '60000' }])
    // A new window audits the first one in full again; a window without repeats writes nothing more.
    await rejections.record(replay('aa'), 'replay')
    await rejections.flush()
    assert.equal(entries.length, 4)
    assert.equal(entries[3]!.action, 'capability.request')
  })

  it('bounds a window at 2 × keysMax + 1 entries however many peers reject', async () => {
    const { rejections, entries } = setUp(4)
    for (let peer = 0; peer < 1000; peer++) for (let i = 0; i < 3; i++) await rejections.record(replay(String(peer)), 'replay')
    await rejections.stop()
    assert.ok(entries.length <= 2 * 4 + 1, `${entries.length} entries`)
    const overflow = entries.find((e) => e.action === 'audit.repeated' && e.detail?.action === 'audit.overflow')!
    assert.equal(overflow.detail?.count, String((1000 - 4) * 3))
  })
})

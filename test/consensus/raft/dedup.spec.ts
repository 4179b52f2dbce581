import assert from 'node:assert/strict'
import { RaftDecodeError, SessionTable } from '../../../consensus/raft/index.js'

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)

describe('raft: apply-side client sessions', () => {
  it('applies a request once and hands a retry the first result', () => {
    const table = new SessionTable()
    let runs = 0
    const op = (): Uint8Array => bytes(`result-${++runs}`)
    assert.deepEqual(table.applyOnce({ client: 'c', seq: 1 }, op), { kind: 'new', result: bytes('result-1') })
    assert.deepEqual(table.applyOnce({ client: 'c', seq: 1 }, op), { kind: 'duplicate', result: bytes('result-1') })
    assert.equal(runs, 1)
    table.applyOnce({ client: 'c', seq: 2 }, op)
    assert.deepEqual(table.applyOnce({ client: 'c', seq: 1 }, op), { kind: 'stale' })
    assert.equal(runs, 2)
    assert.equal(table.applyOnce(undefined, op).kind, 'new', 'requests without an id always apply')
  })

  it('evicts the least recently used client beyond its bound', () => {
    const table = new SessionTable(2)
    table.record({ client: 'a', seq: 1 }, bytes('a'))
    table.record({ client: 'b', seq: 1 }, bytes('b'))
    table.record({ client: 'a', seq: 2 }, bytes('a2')) // a is now the most recent
    table.record({ client: 'c', seq: 1 }, bytes('c'))
    assert.equal(table.size, 2)
    assert.equal(table.check({ client: 'b', seq: 1 }).kind, 'new', 'b was evicted')
    assert.equal(table.check({ client: 'a', seq: 2 }).kind, 'duplicate')
  })

  it('survives a snapshot round trip, LRU order included, and rejects garbage', () => {
    const table = new SessionTable(2)
    table.record({ client: 'a', seq: 1 }, bytes('a'))
    table.record({ client: 'b', seq: 4 }, bytes('b'))
    const copy = SessionTable.decode(table.encode(), 2)
    assert.deepEqual(copy.encode(), table.encode())
    copy.record({ client: 'c', seq: 1 }, bytes('c'))
    assert.equal(copy.check({ client: 'a', seq: 1 }).kind, 'new', 'a, the oldest, was evicted first')
    assert.throws(() => SessionTable.decode(bytes('nope')), RaftDecodeError)
  })
})

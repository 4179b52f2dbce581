import assert from 'node:assert/strict'
import { type Operation, checkHistory } from '../../simulations/linearizability.js'

const op = (client: string, callTick: number, returnTick: number, input: Operation['input'], output: Operation['output'], key = 'k'): Operation =>
  ({ client, key, callTick, returnTick, input, output })

describe('linearizability checker', () => {
  it('accepts a sequential history and concurrent overlaps that can be ordered', () => {
    assert.deepEqual(checkHistory([
      op('a', 0, 1, { kind: 'put', value: 'x' }, 'ok'),
      op('b', 2, 3, { kind: 'get' }, 'x'),
      op('a', 4, 8, { kind: 'put', value: 'y' }, 'ok'),
      op('b', 5, 6, { kind: 'get' }, 'y'), // overlaps the put, may see it
      op('c', 5, 7, { kind: 'cas', from: 'y', to: 'z' }, true)
    ]), { result: 'ok' })
  })

  it('rejects a stale read after a completed write', () => {
    const v = checkHistory([
      op('a', 0, 1, { kind: 'put', value: 'x' }, 'ok'),
      op('a', 2, 3, { kind: 'put', value: 'y' }, 'ok'),
      op('b', 4, 5, { kind: 'get' }, 'x')
    ])
    assert.equal(v.result, 'illegal')
  })

  it('rejects two successful CAS from the same value', () => {
    const v = checkHistory([
      op('a', 0, 1, { kind: 'put', value: 'x' }, 'ok'),
      op('b', 2, 6, { kind: 'cas', from: 'x', to: 'y' }, true),
      op('c', 2, 6, { kind: 'cas', from: 'x', to: 'z' }, true)
    ])
    assert.equal(v.result, 'illegal')
  })

  it('checks keys independently', () => {
    assert.deepEqual(checkHistory([
      op('a', 0, 1, { kind: 'put', value: 'x' }, 'ok', 'k1'),
      op('b', 2, 3, { kind: 'get' }, null, 'k2')
    ]), { result: 'ok' })
  })

  it('reports unknown, not illegal, when the search budget runs out', () => {
    const ops = Array.from({ length: 12 }, (_, i) => op(`c${i}`, 0, 100, { kind: 'put', value: `v${i}` }, 'ok'))
    ops.push(op('r', 101, 102, { kind: 'get' }, 'nope'))
    assert.equal(checkHistory(ops, 50).result, 'unknown')
    assert.equal(checkHistory(ops).result, 'illegal')
  })
})

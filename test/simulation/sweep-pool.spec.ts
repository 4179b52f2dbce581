import assert from 'node:assert/strict'
import { sweepPool, type SweepOutcome } from '../../simulations/sweep-pool.js'

const FUNCTIONS = new URL('./fixtures/pool-functions.ts', import.meta.url)

async function collect<I, O> (pool: AsyncIterable<SweepOutcome<I, O>>): Promise<Array<SweepOutcome<I, O>>> {
  const outcomes: Array<SweepOutcome<I, O>> = []
  for await (const outcome of pool) outcomes.push(outcome)
  return outcomes.sort((a, b) => a.index - b.index)
}

describe('sweep pool (worker threads)', () => {
  it('runs every input through the exported function', async () => {
    const inputs = Array.from({ length: 12 }, (_, i) => i)
    const outcomes = await collect(sweepPool<number, number>({ module: FUNCTIONS, exportName: 'square', inputs, workers: 2 }))
    assert.deepEqual(outcomes, inputs.map((n) => ({ index: n, input: n, ok: true, output: n * n })))
  })

  it('fails the input whose run throws, and goes on', async () => {
    const outcomes = await collect(sweepPool<number, number>({ module: FUNCTIONS, exportName: 'squareUnlessThree', inputs: [1, 2, 3, 4, 5], workers: 2 }))
    assert.deepEqual(outcomes.map((o) => o.ok), [true, true, false, true, true])
    const failed = outcomes[2]!
    assert.ok(!failed.ok && failed.error.includes('three is refused'), JSON.stringify(failed))
  })

  it('fails the input whose worker dies, and replaces the worker', async () => {
    const outcomes = await collect(sweepPool<number, number>({ module: FUNCTIONS, exportName: 'squareUnlessTwoKills', inputs: [1, 2, 3, 4], workers: 1 }))
    assert.deepEqual(outcomes.map((o) => o.ok ? o.output : 'died'), [1, 'died', 9, 16])
  })

  it('draws inputs lazily: leaving early stops an endless sweep', async () => {
    let drawn = 0
    function * naturals (): Generator<number> { for (;;) yield drawn++ }
    let seen = 0
    for await (const outcome of sweepPool<number, number>({ module: FUNCTIONS, exportName: 'square', inputs: naturals(), workers: 2 })) {
      assert.ok(outcome.ok)
      if (++seen === 5) break
    }
    assert.ok(drawn <= 5 + 2, `${drawn} inputs drawn for 5 outcomes`)
  })

  it('fails the sweep when the module or its export cannot be loaded', async () => {
    await assert.rejects(collect(sweepPool({ module: new URL('./fixtures/no-such-module.ts', import.meta.url), exportName: 'square', inputs: [1], workers: 1 })), /no-such-module/)
    await assert.rejects(collect(sweepPool({ module: FUNCTIONS, exportName: 'cube', inputs: [1], workers: 1 })), /exports no function cube/)
  })
})

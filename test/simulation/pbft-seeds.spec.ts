import assert from 'node:assert/strict'
import { runPbftSeed } from '../../simulations/pbft-sim.js'

// The PBFT simulator over a fixed seed list: up to f Byzantine organisations, network faults and
// replica restarts; every seed must keep agreement, prefix, state and evidence invariants, end with a
// linearizable client history, and complete every client request once the network is healed.

const SEEDS = 200
const TICKS = 200

describe('pbft simulation: fixed seeds', function () {
  this.timeout(180_000)

  it(`${SEEDS} seeds with up to f faulty orgs: no violation, and every seed completes requests after healing`, async () => {
    const failures: string[] = []
    let ops = 0
    let faulty = 0
    let orgs7 = 0
    for (let seed = 1; seed <= SEEDS; seed++) {
      const r = await runPbftSeed({ seed, ticks: TICKS })
      ops += r.stats.opsCompleted
      faulty += Object.keys(r.config.byzantine).length
      if (r.config.orgs === 7) orgs7++
      if (!r.ok) failures.push(`seed ${seed}: ${r.violation!.invariant}: ${r.violation!.message}\n  ${r.trace.slice(-15).join('\n  ')}`)
      else if (r.stats.opsCompletedLiveness === 0) failures.push(`seed ${seed}: no request completed in the liveness phase`)
      else if (r.linearizability === 'illegal') failures.push(`seed ${seed}: history not linearizable`)
    }
    assert.deepEqual(failures, [], failures.join('\n'))
    assert.ok(ops > SEEDS * 10, `only ${ops} requests completed`)
    assert.ok(faulty > SEEDS / 2, `only ${faulty} faulty orgs drawn`)
    assert.ok(orgs7 > SEEDS / 5, `only ${orgs7} seeds with 7 orgs`)
  })

  it('replays a seed exactly', async () => {
    const a = await runPbftSeed({ seed: 77, ticks: 200 })
    const b = await runPbftSeed({ seed: 77, ticks: 200 })
    assert.deepEqual(a.stats, b.stats)
    assert.deepEqual(a.trace, b.trace)
  })

  it('catches a core that accepts a NewView without recomputing O (against a lying new primary) and names the seed', async () => {
    let caught: string | undefined
    for (let seed = 1; seed <= 100 && caught === undefined; seed++) {
      const r = await runPbftSeed({ seed, ticks: TICKS, unsafe: { trustNewViewO: true }, behaviour: 'bad-new-view' })
      if (!r.ok) caught = `seed ${seed}: ${r.violation!.invariant}: ${r.violation!.message}`
    }
    console.log(`      broken core caught at ${caught ?? 'no seed'}`)
    assert.match(caught ?? '', /^seed \d+: (agreement|state agreement|linearizability|acknowledged request lost)/)
  })

  it('without the bug the core survives a lying new primary, and equivocators leave evidence naming only them', async () => {
    let evidence = 0
    for (const behaviour of ['bad-new-view', 'equivocate'] as const) {
      for (let seed = 1; seed <= 10; seed++) {
        const r = await runPbftSeed({ seed, ticks: TICKS, behaviour })
        assert.ok(r.ok, `seed ${seed} (${behaviour}): ${r.violation?.invariant}: ${r.violation?.message}`)
        if (behaviour === 'equivocate') evidence += r.stats.evidence
      }
    }
    assert.ok(evidence > 0, 'no equivocation was ever detected')
  })
})

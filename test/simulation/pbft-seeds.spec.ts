import assert from 'node:assert/strict'
import { type PbftSimOptions, runPbftSeed } from '../../simulations/pbft-sim.js'

// The PBFT simulator over a fixed seed list: 4 to 8 organisations (n = 3f+1 and the sizes between,
// whose quorums are not 2f+1), up to f Byzantine ones, network faults and replica restarts; every
// seed must keep agreement, prefix, state and evidence invariants, end with a linearizable client
// history, and complete every client request once the network is healed.

const SEEDS = 100
const TICKS = 200
const SEEDS_PER_SIZE = 30
const LAGGARD_SEEDS = 10

/** The seeds' failures (violations, no request done once healed, a history not linearizable). */
async function runSeeds (seeds: number, options: Omit<PbftSimOptions, 'seed'>, each: (r: Awaited<ReturnType<typeof runPbftSeed>>) => void = () => {}): Promise<string[]> {
  const failures: string[] = []
  for (let seed = 1; seed <= seeds; seed++) {
    const r = await runPbftSeed({ seed, ...options })
    each(r)
    if (!r.ok) failures.push(`seed ${seed}: ${r.violation!.invariant}: ${r.violation!.message}\n  ${r.trace.slice(-15).join('\n  ')}`)
    else if (r.stats.opsCompletedLiveness === 0) failures.push(`seed ${seed}: no request completed in the liveness phase`)
    else if (r.linearizability === 'illegal') failures.push(`seed ${seed}: history not linearizable`)
  }
  return failures
}

describe('pbft simulation: fixed seeds', function () {
  this.timeout(180_000)

  it(`${SEEDS} seeds with up to f faulty orgs: no violation, and every seed completes requests after healing`, async () => {
    let ops = 0
    let faulty = 0
    const sizes = new Map<number, number>()
    const failures = await runSeeds(SEEDS, { ticks: TICKS }, (r) => {
      ops += r.stats.opsCompleted
      faulty += Object.keys(r.config.byzantine).length
      sizes.set(r.config.orgs, (sizes.get(r.config.orgs) ?? 0) + 1)
    })
    assert.deepEqual(failures, [], failures.join('\n'))
    assert.ok(ops > SEEDS * 10, `only ${ops} requests completed`)
    assert.ok(faulty > SEEDS / 2, `only ${faulty} faulty orgs drawn`)
    for (const n of [4, 5, 6, 7, 8]) assert.ok((sizes.get(n) ?? 0) > SEEDS / 12, `only ${sizes.get(n) ?? 0} seeds with ${n} orgs`)
  })

  for (const orgs of [5, 6]) {
    it(`${SEEDS_PER_SIZE} seeds with ${orgs} orgs (quorum 4, not 2f+1 = 3): no violation, requests complete after healing`, async () => {
      let faulty = 0
      const failures = await runSeeds(SEEDS_PER_SIZE, { ticks: TICKS, orgs }, (r) => { faulty += Object.keys(r.config.byzantine).length })
      assert.deepEqual(failures, [], failures.join('\n'))
      assert.ok(faulty > SEEDS_PER_SIZE / 4, `only ${faulty} faulty orgs drawn`)
    })
  }

  it('a lagging org (its Raft leader lost for 60 ticks) catches up from commit certificates, with no view change anywhere', async () => {
    let catchUps = 0
    let committedSent = 0
    const uncertified: number[] = []
    const failures = await runSeeds(LAGGARD_SEEDS, { ticks: TICKS, laggard: true }, (r) => {
      catchUps += r.stats.catchUps
      committedSent += r.stats.committedSent
      if (r.stats.catchUps === 0) uncertified.push(r.seed)
    })
    assert.deepEqual(failures, [], failures.join('\n'))
    assert.deepEqual(uncertified, [], 'seeds whose laggard caught up without a commit certificate')
    assert.ok(catchUps >= LAGGARD_SEEDS * 3 && committedSent >= catchUps, `${catchUps} batches from ${committedSent} certificates`)
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
      if (!r.ok) caught = `seed ${seed}: ${r.violation!.invariant}: ${r.violation!.message.split('\n')[0]}`
    }
    console.log(`      broken core caught at ${caught ?? 'no seed'}`)
    assert.match(caught ?? '', /^seed \d+: (agreement|state agreement|linearizability|acknowledged request lost|core assertion: two batches committed)/)
  })

  it('catches the n = 3f+1 quorum (2f+1) at 5 orgs with an equivocating primary, and names the seed', async () => {
    let caught: string | undefined
    for (let seed = 1; seed <= 100 && caught === undefined; seed++) {
      const r = await runPbftSeed({ seed, ticks: TICKS, orgs: 5, unsafe: { quorum2fPlus1: true }, behaviour: 'equivocate' })
      if (!r.ok) caught = `seed ${seed}: ${r.violation!.invariant}: ${r.violation!.message.split('\n')[0]}`
    }
    console.log(`      2f+1 quorums caught at ${caught ?? 'no seed'}`)
    assert.match(caught ?? '', /^seed \d+: (agreement|state agreement|linearizability|acknowledged request lost|core assertion: two batches committed)/)
  })

  it('catches a core without the request age bound (a censoring primary keeps its view) and names the seed', async () => {
    let caught: string | undefined
    for (let seed = 1; seed <= 100 && caught === undefined; seed++) {
      // A censor is primary when the network heals in a few seeds only; 600 healed ticks are 15 bounds and more.
      const r = await runPbftSeed({ seed, ticks: TICKS, orgs: 4, unsafe: { noRequestAgeBound: true }, behaviour: 'censor', livenessTicksMax: 600 })
      if (!r.ok) caught = `seed ${seed}: ${r.violation!.invariant}: ${r.violation!.message.split('\n')[0]}`
    }
    console.log(`      censorship caught at ${caught ?? 'no seed'}`)
    assert.match(caught ?? '', /^seed \d+: liveness: client requests still pending/)
  })

  it('without the bug the core survives a lying new primary and a censoring one, and equivocators leave evidence naming only them', async () => {
    let evidence = 0
    for (const behaviour of ['bad-new-view', 'equivocate', 'censor'] as const) {
      for (let seed = 1; seed <= 10; seed++) {
        const r = await runPbftSeed({ seed, ticks: TICKS, behaviour })
        assert.ok(r.ok, `seed ${seed} (${behaviour}): ${r.violation?.invariant}: ${r.violation?.message}`)
        if (behaviour === 'equivocate') evidence += r.stats.evidence
      }
    }
    assert.ok(evidence > 0, 'no equivocation was ever detected')
  })
})

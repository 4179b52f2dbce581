import assert from 'node:assert/strict'
import { runRaftSeed } from '../../simulations/raft-sim.js'

// The deterministic simulator over a fixed seed list: every seed must keep every invariant, end
// with a linearizable history, and make progress once the faults are healed.

const SEEDS = 200
const TICKS = 800

describe('raft simulation: fixed seeds', function () {
  this.timeout(120_000)

  it(`${SEEDS} seeds under faults: no violation, and every seed commits operations after healing`, async () => {
    const failures: string[] = []
    let ops = 0
    for (let seed = 1; seed <= SEEDS; seed++) {
      const r = await runRaftSeed({ seed, ticks: TICKS })
      ops += r.stats.opsCompleted
      if (!r.ok) failures.push(`seed ${seed}: ${r.violation!.invariant}: ${r.violation!.message}\n  ${r.trace.slice(-15).join('\n  ')}`)
      else if (r.stats.opsCompletedLiveness === 0) failures.push(`seed ${seed}: no operation completed in the liveness phase`)
      else if (r.linearizability === 'illegal') failures.push(`seed ${seed}: history not linearizable`)
    }
    assert.deepEqual(failures, [], failures.join('\n'))
    assert.ok(ops > SEEDS * 10, `only ${ops} operations completed`)
  })

  it('replays a seed exactly', async () => {
    const a = await runRaftSeed({ seed: 77, ticks: 300 })
    const b = await runRaftSeed({ seed: 77, ticks: 300 })
    assert.deepEqual(a.stats, b.stats)
    assert.deepEqual(a.trace, b.trace)
  })

  it('catches a deliberately broken core (votes granted without the log check) and names the seed', async () => {
    let caught: string | undefined
    for (let seed = 1; seed <= 100 && caught === undefined; seed++) {
      const r = await runRaftSeed({ seed, ticks: TICKS, unsafe: { voteIgnoringLog: true } })
      if (!r.ok) caught = `seed ${seed}: ${r.violation!.invariant}: ${r.violation!.message}`
    }
    console.log(`      broken core caught at ${caught ?? 'no seed'}`)
    assert.ok(caught !== undefined, 'the checkers missed a core that votes for stale candidates')
    assert.match(caught, /leader completeness|state machine safety|log matching|linearizability|core assertion/)
  })

  it('catches a driver that sends before its write is durable (a vote or an ack lost in a crash) and names the seed', async () => {
    let caught: string | undefined
    for (let seed = 1; seed <= 100 && caught === undefined; seed++) {
      const r = await runRaftSeed({ seed, ticks: TICKS, unsafeSendBeforePersist: true })
      if (!r.ok) caught = `seed ${seed}: ${r.violation!.invariant}: ${r.violation!.message}`
    }
    console.log(`      send before persist caught at ${caught ?? 'no seed'}`)
    assert.ok(caught !== undefined, 'the checkers missed a driver that acknowledges what it has not written')
    assert.match(caught, /election safety|leader completeness|state machine safety|log matching|linearizability|core assertion/)
  })

  it('catches stale reads (reads served without ReadIndex) through the linearizability checker', async () => {
    let caught: string | undefined
    for (let seed = 1; seed <= 20 && caught === undefined; seed++) {
      const r = await runRaftSeed({ seed, ticks: TICKS, unsafeLocalReads: true })
      if (!r.ok) caught = `seed ${seed}: ${r.violation!.invariant}: ${r.violation!.message}`
    }
    console.log(`      stale reads caught at ${caught ?? 'no seed'}`)
    assert.match(caught ?? '', /^seed \d+: linearizability/)
  })
})

import { parseArgs } from 'node:util'
import { cryptoRng } from '../node/system-clock.js'
import { pbftMain } from './pbft-run.js'
import { type SimOptions, type SimResult, runRaftSeed } from './raft-sim.js'

// `npm run sim -- raft --seeds N [--seed S] [--ticks T] [--nodes 3|5] [--trace] [--unsafe NAME]`
// Runs seeds S, S+1, … (S random when omitted, and printed), stops at the first failure and prints
// the seed, the violated invariant and the last events, replayable with --seed S --trace.

// Deliberate bugs (test-only) that the checkers should catch: two in the core, two in the shell.
const UNSAFE: Record<string, Partial<SimOptions>> = {
  'commit-old-term': { unsafe: { commitOldTermEntries: true } },
  'vote-ignoring-log': { unsafe: { voteIgnoringLog: true } },
  'stale-reads': { unsafeLocalReads: true },
  'send-before-persist': { unsafeSendBeforePersist: true }
}

export async function main (argv: string[]): Promise<number> {
  if (argv[0] === 'pbft') return await pbftMain(argv.slice(1))
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      seeds: { type: 'string', default: '1' },
      seed: { type: 'string' },
      ticks: { type: 'string', default: '1000' },
      nodes: { type: 'string' },
      trace: { type: 'boolean', default: false },
      unsafe: { type: 'string' },
      json: { type: 'boolean', default: false }
    }
  })
  if (positionals[0] !== 'raft') {
    console.error('usage: sim pbft --seeds N … (see simulations/pbft-run.ts), or')
    console.error(`usage: sim raft --seeds N [--seed S] [--ticks T] [--nodes 3|5] [--trace] [--unsafe ${Object.keys(UNSAFE).join('|')}] [--json]`)
    return 2
  }
  const seeds = Number(values.seeds)
  const ticks = Number(values.ticks)
  const nodes = values.nodes === undefined ? undefined : Number(values.nodes)
  const unsafe = values.unsafe === undefined ? undefined : UNSAFE[values.unsafe]
  if (!Number.isSafeInteger(seeds) || seeds < 1 || !Number.isSafeInteger(ticks) || ticks < 1 ||
      (nodes !== undefined && nodes !== 3 && nodes !== 5) || (values.unsafe !== undefined && unsafe === undefined)) {
    console.error('invalid arguments')
    return 2
  }
  // The only non-determinism in the simulator: choosing a first seed when none is given.
  const first = values.seed === undefined ? cryptoRng.nextU32() >>> 1 : Number(values.seed)
  const started = performance.now()
  const totals = { seeds: 0, ops: 0, opsLiveness: 0, elections: 0, crashes: 0, partitions: 0, transfers: 0, dropped: 0, snapshots: 0, confChanges: 0, linearizabilityUnknown: 0 }
  let failure: SimResult | undefined
  for (let i = 0; i < seeds && failure === undefined; i++) {
    const r = await runRaftSeed({
      seed: first + i, ticks, trace: values.trace, ...(nodes === undefined ? {} : { nodes: nodes as 3 | 5 }), ...unsafe
    })
    totals.seeds++
    totals.ops += r.stats.opsCompleted
    totals.opsLiveness += r.stats.opsCompletedLiveness
    totals.elections += r.stats.elections
    totals.crashes += r.stats.crashes
    totals.partitions += r.stats.partitions
    totals.transfers += r.stats.transfers
    totals.dropped += r.stats.dropped
    totals.snapshots += r.stats.snapshotsInstalled
    totals.confChanges += r.stats.confChanges
    if (r.linearizability === 'unknown') totals.linearizabilityUnknown++
    if (!r.ok) failure = r
    if (!values.json && (totals.seeds % 50 === 0 || totals.seeds === seeds)) console.log(`… ${totals.seeds}/${seeds} seeds`)
  }
  const seconds = (performance.now() - started) / 1000
  const seedsPerMinute = Math.round(totals.seeds / seconds * 60)
  if (values.json) {
    console.log(JSON.stringify({ firstSeed: first, ...totals, seconds, seedsPerMinute, failure }))
  } else {
    console.log(`raft: ${totals.seeds - (failure === undefined ? 0 : 1)}/${totals.seeds} seeds ok from seed ${first} in ${seconds.toFixed(1)} s (${seedsPerMinute} seeds/min)`)
    console.log(`  ops committed ${totals.ops} (liveness ${totals.opsLiveness}), elections ${totals.elections}, crashes ${totals.crashes}, ` +
      `partitions ${totals.partitions}, transfers ${totals.transfers}, packets dropped ${totals.dropped}, snapshots installed ${totals.snapshots}, conf changes ${totals.confChanges}` +
      (totals.linearizabilityUnknown > 0 ? `, linearizability search gave up on ${totals.linearizabilityUnknown} seeds` : ''))
    if (failure !== undefined) {
      console.log(`FAILED seed ${failure.seed}: ${failure.violation!.invariant}: ${failure.violation!.message}`)
      console.log(`  config ${JSON.stringify(failure.config)}`)
      console.log(`  last events (replay: npm run sim -- raft --seed ${failure.seed} --seeds 1 --ticks ${ticks}${nodes === undefined ? '' : ` --nodes ${nodes}`}${values.unsafe === undefined ? '' : ` --unsafe ${values.unsafe}`} --trace):`)
      for (const line of failure.trace) console.log(`  ${line}`)
    }
  }
  return failure === undefined ? 0 : 1
}

process.exitCode = await main(process.argv.slice(2))

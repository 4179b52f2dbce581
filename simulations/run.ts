import { parseArgs } from 'node:util'
import { pbftMain } from './pbft-run.js'
import { type SimOptions, type SimResult, runRaftSeed } from './raft-sim.js'
import { sweep } from './sweep.js'

// `npm run sim -- raft --seeds N [--seed S] [--ticks T] [--nodes 3|5] [--trace] [--unsafe NAME]`
// Runs seeds S, S+1, … (S random when omitted, and printed), stops at the first failure and prints
// the seed, the violated invariant and the last events, replayable with --seed S --trace.

// Deliberate bugs (test-only) that the checkers should catch: two in the core, one in the driver, one in the client.
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
  const totals = { ops: 0, opsLiveness: 0, elections: 0, crashes: 0, partitions: 0, transfers: 0, dropped: 0, snapshots: 0, confChanges: 0, linearizabilityUnknown: 0 }
  return await sweep<SimResult>({
    protocol: 'raft',
    seeds,
    seed: values.seed,
    json: values.json,
    replayFlags: `--ticks ${ticks}${nodes === undefined ? '' : ` --nodes ${nodes}`}${values.unsafe === undefined ? '' : ` --unsafe ${values.unsafe}`}`,
    run: async (seed) => await runRaftSeed({ seed, ticks, trace: values.trace, ...(nodes === undefined ? {} : { nodes: nodes as 3 | 5 }), ...unsafe }),
    tally: (r) => {
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
    },
    totals: () => totals,
    summary: () => `ops committed ${totals.ops} (liveness ${totals.opsLiveness}), elections ${totals.elections}, crashes ${totals.crashes}, ` +
      `partitions ${totals.partitions}, transfers ${totals.transfers}, packets dropped ${totals.dropped}, snapshots installed ${totals.snapshots}, conf changes ${totals.confChanges}` +
      (totals.linearizabilityUnknown > 0 ? `, linearizability search gave up on ${totals.linearizabilityUnknown} seeds` : '')
  })
}

process.exitCode = await main(process.argv.slice(2))

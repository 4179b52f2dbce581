import { parseArgs } from 'node:util'
import { BYZANTINE_BEHAVIOURS, type ByzantineBehaviour } from './pbft-byzantine.js'
import { PBFT_SIM_ORGS_MAX, PBFT_SIM_ORGS_MIN, type PbftSimOptions, type PbftSimResult, runPbftSeed } from './pbft-sim.js'
import { sweep } from './sweep.js'

// `npm run sim -- pbft --seeds N [--seed S] [--ticks T] [--orgs 4..10] [--behaviour B] [--laggard] [--trace] [--unsafe NAME] [--json]`
// Runs seeds S, S+1, … (S random when omitted, and printed), stops at the first failure and prints
// the seed, the violated invariant and the last events, replayable with --seed S --seeds 1 --trace.

// Deliberate bugs (test-only) the checkers must catch, each with the attack (and federation size)
// that exposes it; explicit --behaviour and --orgs flags win.
const UNSAFE: Record<string, Partial<PbftSimOptions>> = {
  'trust-new-view': { unsafe: { trustNewViewO: true }, behaviour: 'bad-new-view' },
  'commit-f-plus-1': { unsafe: { commitQuorumFPlus1: true }, behaviour: 'conflicting-view-changes' },
  // 5 orgs: the two halves an equivocating primary splits the backups into each reach 2f+1 = 3 with its votes.
  'quorum-2f-plus-1': { unsafe: { quorum2fPlus1: true }, behaviour: 'equivocate', orgs: 5 },
  // Only the progress timer: a censoring primary is never replaced, the liveness phase never ends.
  'no-request-age-bound': { unsafe: { noRequestAgeBound: true }, behaviour: 'censor' }
}

export async function pbftMain (argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      seeds: { type: 'string', default: '1' },
      seed: { type: 'string' },
      ticks: { type: 'string', default: '400' },
      orgs: { type: 'string' },
      behaviour: { type: 'string' },
      laggard: { type: 'boolean', default: false },
      trace: { type: 'boolean', default: false },
      unsafe: { type: 'string' },
      json: { type: 'boolean', default: false }
    }
  })
  const seeds = Number(values.seeds)
  const ticks = Number(values.ticks)
  const orgs = values.orgs === undefined ? undefined : Number(values.orgs)
  const unsafe = values.unsafe === undefined ? undefined : UNSAFE[values.unsafe]
  const behaviour = values.behaviour as ByzantineBehaviour | undefined
  if (!Number.isSafeInteger(seeds) || seeds < 1 || !Number.isSafeInteger(ticks) || ticks < 1 || (orgs !== undefined && !(Number.isSafeInteger(orgs) && orgs >= PBFT_SIM_ORGS_MIN && orgs <= PBFT_SIM_ORGS_MAX)) ||
      (values.unsafe !== undefined && unsafe === undefined) || (behaviour !== undefined && !BYZANTINE_BEHAVIOURS.includes(behaviour))) {
    console.error(`usage: sim pbft --seeds N [--seed S] [--ticks T] [--orgs ${PBFT_SIM_ORGS_MIN}..${PBFT_SIM_ORGS_MAX}] [--behaviour ${BYZANTINE_BEHAVIOURS.join('|')}] [--laggard] [--trace] [--unsafe ${Object.keys(UNSAFE).join('|')}] [--json]`)
    return 2
  }
  const totals = { ops: 0, opsLiveness: 0, viewChanges: 0, restarts: 0, partitions: 0, stateTransfers: 0, evidence: 0, rejected: 0, dropped: 0, byzantine: 0, statusSent: 0, committedSent: 0, catchUps: 0 }
  return await sweep<PbftSimResult>({
    protocol: 'pbft',
    seeds,
    seed: values.seed,
    json: values.json,
    replayFlags: `--ticks ${ticks}${orgs === undefined ? '' : ` --orgs ${orgs}`}${behaviour === undefined ? '' : ` --behaviour ${behaviour}`}${values.laggard ? ' --laggard' : ''}${values.unsafe === undefined ? '' : ` --unsafe ${values.unsafe}`}`,
    run: async (seed) => await runPbftSeed({
      seed, ticks, trace: values.trace, ...unsafe, ...(orgs === undefined ? {} : { orgs }), ...(behaviour === undefined ? {} : { behaviour }), ...(values.laggard ? { laggard: true } : {})
    }),
    tally: (r) => {
      totals.ops += r.stats.opsCompleted
      totals.opsLiveness += r.stats.opsCompletedLiveness
      totals.viewChanges += r.stats.viewChanges
      totals.restarts += r.stats.restarts
      totals.partitions += r.stats.partitions
      totals.stateTransfers += r.stats.stateTransfers
      totals.evidence += r.stats.evidence
      totals.rejected += r.stats.rejected
      totals.dropped += r.stats.dropped
      totals.statusSent += r.stats.statusSent
      totals.committedSent += r.stats.committedSent
      totals.catchUps += r.stats.catchUps
      totals.byzantine += Object.keys(r.config.byzantine).length
    },
    totals: () => totals,
    summary: () => `ops committed ${totals.ops} (liveness ${totals.opsLiveness}), faulty orgs ${totals.byzantine}, view changes ${totals.viewChanges}, replica restarts ${totals.restarts}, ` +
      `partitions ${totals.partitions}, state transfers ${totals.stateTransfers}, evidence ${totals.evidence}, messages rejected ${totals.rejected}, packets dropped ${totals.dropped}, ` +
      `status sent ${totals.statusSent}, commit certificates sent ${totals.committedSent}, batches caught up from them ${totals.catchUps}`
  })
}

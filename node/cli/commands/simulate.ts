import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { BYZANTINE_KINDS, type FederationSimReport, type Scenario } from '../../../simulations/federation/scenario.js'
import { FAULT_KINDS, loadScenario, ScenarioError, type ScenarioFlags } from '../../../simulations/federation/scenario-file.js'
import { renderHtmlReport, type ChartLibrary } from '../../../simulations/report/html-report.js'
import { sweepPool } from '../../../simulations/sweep-pool.js'
import { cryptoRng } from '../../runtime/system-clock.js'
import { processOutput, type CommandOutput } from './audit.js'

export const USAGE = `usage:
  fedmesh simulate [SCENARIO.yaml] [--orgs 4..10] [--nodes 1..5] [--seed S] [--duration 10s] [--liveness 30s]
                   [--tasks-per-second N] [--concurrency N] [--faults random|none] [--byzantine ORG=KIND]...
                   [--seeds N [--workers K]] [--trace] [--out DIR]
  fedmesh simulate --swarm [--orgs N] [--nodes N] [--seed S] [--seeds N [--workers K]] [--trace] [--out DIR]
      run a whole federation (orgs × nodes: Raft in each org, PBFT across them) in simulated time
      under faults, check its invariants, and write DIR/report.json and DIR/report.html (default
      ./fedmesh-sim-report). Flags override the file; times are ms or '500ms', '30s', '2m'; without
      --seed one is drawn and printed. --seeds N runs seeds S..S+N-1 on K worker threads (default one
      per core) and stops at the first failure, printing the command that replays it (its report is
      the one written). --swarm draws every setting but --orgs/--nodes from each seed (federation
      size, network, workload, Byzantine orgs, votes: swarm testing), as randomScenario(seed) does.
      Exit 0 ok, 1 an invariant violated (or the simulator failed), 2 bad input.
      orgs: alpha, bravo, charlie, …; nodes: ORG/0, ORG/1, …
      fault kinds: ${FAULT_KINDS.join(', ')}
      byzantine kinds: ${BYZANTINE_KINDS.join(', ')}`

/** Where the simulator is once built; loaded on demand, so every other command runs without it. */
export const SIMULATOR = new URL('../../../simulations/federation/federation-sim.js', import.meta.url)
const SIMULATOR_EXPORT = 'runFederationSim'
type Simulator = typeof import('../../../simulations/federation/federation-sim.js')
type RunFederationSim = Simulator['runFederationSim']
/** The scenario of each seed: the loaded one with that seed, or (--swarm) one drawn from it. */
type ScenarioOf = (seed: number) => Scenario

export const REPORT_DIR_DEFAULT = 'fedmesh-sim-report'
const PROGRESS_INTERVAL_MS = 1000
const SEED_MAX = 0xffff_ffff

// uPlot: MIT, 51 KB minified with no dependencies, made for time series, and its draw hooks shade
// fault intervals without a plugin (Chart.js is ~4× larger and needs one for annotations).
const require = createRequire(import.meta.url)
export async function loadChartLibrary (): Promise<ChartLibrary> {
  const [js, css] = await Promise.all(['uplot/dist/uPlot.iife.min.js', 'uplot/dist/uPlot.min.css'].map(async (file) => await readFile(require.resolve(file), 'utf8')))
  return { js: js!, css: css! }
}

class UsageError extends Error {}

export async function simulateCommand (args: string[], out: CommandOutput = processOutput, simulator: URL = SIMULATOR): Promise<number> {
  try {
    const { values, positionals, tokens } = parseArgs({
      args,
      allowPositionals: true,
      tokens: true,
      options: {
        orgs: { type: 'string' },
        nodes: { type: 'string' },
        seed: { type: 'string' },
        duration: { type: 'string' },
        liveness: { type: 'string' },
        'tasks-per-second': { type: 'string' },
        concurrency: { type: 'string' },
        faults: { type: 'string' },
        byzantine: { type: 'string', multiple: true },
        seeds: { type: 'string', default: '1' },
        workers: { type: 'string' },
        trace: { type: 'boolean', default: false },
        swarm: { type: 'boolean', default: false },
        out: { type: 'string', default: REPORT_DIR_DEFAULT }
      }
    })
    if (positionals.length > 1) throw new UsageError('at most one scenario file')
    const seeds = Number(values.seeds)
    const workers = values.workers === undefined ? availableParallelism() : Number(values.workers)
    if (!Number.isSafeInteger(seeds) || seeds < 1) throw new UsageError('--seeds must be a positive integer')
    if (!Number.isSafeInteger(workers) || workers < 1) throw new UsageError('--workers must be a positive integer')
    if (values.trace && seeds > 1) throw new UsageError('--trace is for one seed (the replay of a sweep\'s failure), not for --seeds')
    const file = positionals[0]
    const { swarm, ...flags }: ScenarioFlags & { swarm?: boolean } = values
    const drawn = Object.keys(flags).filter((k) => !['seed', 'orgs', 'nodes', 'seeds', 'workers', 'trace', 'out'].includes(k) && (flags as Record<string, unknown>)[k] !== undefined)
    if (swarm === true && (file !== undefined || drawn.length > 0)) throw new UsageError(`--swarm draws every setting but --orgs and --nodes from the seed: drop ${file !== undefined ? file : `--${drawn[0]!}`}`)
    // The only randomness: a first seed when none is given, printed so that the run replays.
    const scenario = loadScenario({
      ...(file !== undefined ? { yaml: await readScenarioFile(file), source: file } : {}),
      flags,
      defaultSeed: cryptoRng.nextU32() >>> 1
    })
    if (scenario.seed + seeds - 1 > SEED_MAX) throw new UsageError(`seeds ${scenario.seed}..${scenario.seed + seeds - 1} run past ${SEED_MAX}`)
    const { runFederationSim: run, randomScenario } = await loadSimulator(simulator)
    const fixed = { ...(flags.orgs !== undefined ? { orgs: scenario.orgs } : {}), ...(flags.nodes !== undefined ? { nodesPerOrg: scenario.nodesPerOrg } : {}) }
    const scenarioOf: ScenarioOf = swarm === true ? (seed) => randomScenario(seed, fixed) : (seed) => ({ ...scenario, seed })
    const replay = replayCommand(tokens)
    const result = seeds === 1
      ? await runOne(run, scenarioOf(scenario.seed), values.trace, replay, out)
      : await runSweep(simulator, scenarioOf, scenario.seed, seeds, Math.min(workers, seeds), swarm === true
        ? `swarm: every setting${Object.keys(fixed).length > 0 ? ` but ${Object.entries(fixed).map(([k, v]) => `${k} ${String(v)}`).join(', ')}` : ''} drawn from each seed`
        : `${scenario.orgs} orgs × ${scenario.nodesPerOrg} nodes, ${scenario.durationMs / 1000} s each`, replay, out)
    if (result.report !== undefined) {
      await writeReport(result.report, values.out)
      out.stdout(`report: ${join(values.out, 'report.html')} (data: report.json)\n`)
    }
    return result.failed ? 1 : 0
  } catch (err) {
    if (err instanceof ScenarioError || err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true) {
      out.stderr(`fedmesh simulate: ${(err as Error).message}\n${USAGE}\n`)
      return 2
    }
    if (err instanceof SimulatorMissing) {
      out.stderr(`fedmesh simulate: ${err.message}\n`)
      return 1
    }
    throw err
  }
}

class SimulatorMissing extends Error {}

async function readScenarioFile (file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as Error).message}`)
  }
}

/** What a run leaves: whether a seed failed, and the report to write (a sweep writes its failure's). */
interface RunResult { failed: boolean, report?: FederationSimReport }

async function loadSimulator (simulator: URL): Promise<Pick<Simulator, 'runFederationSim' | 'randomScenario'>> {
  let module: Record<string, unknown>
  try {
    module = await import(simulator.href) as Record<string, unknown>
  } catch (err) {
    // Only the simulator itself missing, not a module it imports.
    if ((err as { code?: string }).code === 'ERR_MODULE_NOT_FOUND' && (err as Error).message.includes(fileURLToPath(simulator))) {
      throw new SimulatorMissing(`the federation simulator is not in this build (${fileURLToPath(simulator)} is missing)`)
    }
    throw err
  }
  for (const name of [SIMULATOR_EXPORT, 'randomScenario']) {
    if (typeof module[name] !== 'function') throw new SimulatorMissing(`${fileURLToPath(simulator)} exports no function ${name}`)
  }
  return module as unknown as Pick<Simulator, 'runFederationSim' | 'randomScenario'>
}

/** One seed in this thread, so that --trace and progress come straight from the simulator. */
async function runOne (run: RunFederationSim, scenario: Scenario, trace: boolean, replay: (seed: number) => string, out: CommandOutput): Promise<RunResult> {
  out.stderr(`seed ${scenario.seed}: ${scenario.orgs} orgs × ${scenario.nodesPerOrg} nodes, ${scenario.durationMs / 1000} s of faults and workload\n`)
  const progress = throttle()
  let report: FederationSimReport
  try {
    report = await run(scenario, { trace, wallClockMs: () => performance.now(), onProgress: (tMs) => progress(() => out.stderr(`… simulated ${(tMs / 1000).toFixed(1)} s\n`)) })
  } catch (err) {
    out.stdout(failureText(scenario.seed, (err as Error).stack ?? String(err), replay))
    return { failed: true }
  }
  if (trace) out.stdout(report.trace.map((line) => `${line}\n`).join(''))
  out.stdout(report.ok ? `${verdictLine(report)}\n` : failureText(report.seed, report, replay))
  return { failed: !report.ok, report }
}

/** Seeds S.. on worker threads until one fails. */
async function runSweep (simulator: URL, scenarioOf: ScenarioOf, first: number, seeds: number, workers: number, shape: string, replay: (seed: number) => string, out: CommandOutput): Promise<RunResult> {
  const startedMs = performance.now()
  const progress = throttle()
  const scenarios = function * (): Generator<Scenario> {
    for (let i = 0; i < seeds; i++) yield scenarioOf(first + i)
  }
  let done = 0
  let shown = 0
  let failure: { seed: number, cause: FederationSimReport | string } | undefined
  const show = (): void => {
    const minutes = (performance.now() - startedMs) / 60_000
    out.stderr(`seeds ${done}/${seeds} done, ${Math.round(done / Math.max(minutes, 1e-9))} seeds/min, ${failure === undefined ? 0 : 1} failed\n`)
    shown = done
  }
  out.stderr(`seeds ${first}..${first + seeds - 1} on ${workers} workers: ${shape}\n`)
  for await (const outcome of sweepPool<Scenario, FederationSimReport>({ module: simulator, exportName: SIMULATOR_EXPORT, inputs: scenarios(), workers })) {
    done++
    if (!outcome.ok) failure = { seed: outcome.input.seed, cause: outcome.error }
    else if (!outcome.output.ok) failure = { seed: outcome.input.seed, cause: outcome.output }
    if (failure !== undefined) break
    progress(show)
  }
  if (shown !== done) show()
  if (failure === undefined) {
    out.stdout(`${seeds}/${seeds} seeds ok from seed ${first} (no report: a sweep writes its failure's)\n`)
    return { failed: false }
  }
  out.stdout(failureText(failure.seed, failure.cause, replay))
  return { failed: true, ...(typeof failure.cause !== 'string' ? { report: failure.cause } : {}) }
}

/** A failed seed (its violation, or what the simulator threw) and the command that replays it. */
function failureText (seed: number, cause: FederationSimReport | string, replay: (seed: number) => string): string {
  return `FAILED ${typeof cause === 'string' ? `seed ${seed}: the simulator threw: ${cause}` : verdictLine(cause)}\nreplay: ${replay(seed)}\n`
}

function verdictLine (report: FederationSimReport): string {
  const t = report.stats
  const facts = `${(t.simulatedMs / 1000).toFixed(1)} s simulated in ${(t.wallMs / 1000).toFixed(1)} s, ${t.acknowledged}/${t.proposed} tasks acknowledged, ` +
    `${t.viewChanges} view changes, ${t.leaderChanges} leader changes, ${t.crashes} crashes, ${t.partitions} partitions`
  return report.ok ? `seed ${report.seed}: ok (${facts})` : `seed ${report.seed}: VIOLATED ${report.violation?.invariant ?? '?'}: ${report.violation?.message ?? ''} (${facts})`
}

async function writeReport (report: FederationSimReport, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true })
  await writeFile(join(dir, 'report.json'), JSON.stringify(report, null, 2) + '\n')
  await writeFile(join(dir, 'report.html'), renderHtmlReport(report, await loadChartLibrary()))
}

/** Calls its argument at most once a second. */
function throttle (): (print: () => void) => void {
  let lastMs = -Infinity
  return (print) => {
    const nowMs = performance.now()
    if (nowMs - lastMs < PROGRESS_INTERVAL_MS) return
    lastMs = nowMs
    print()
  }
}

type Tokens = NonNullable<ReturnType<typeof parseArgs>['tokens']>

// The command line again, for one seed with its trace: the sweep's own flags dropped.
function replayCommand (tokens: Tokens): (seed: number) => string {
  const kept: string[] = []
  for (const t of tokens) {
    if (t.kind === 'positional') kept.push(t.value)
    if (t.kind !== 'option' || ['seed', 'seeds', 'workers', 'trace'].includes(t.name)) continue
    kept.push(`--${t.name}`, ...(t.value !== undefined ? [t.value] : []))
  }
  return (seed) => ['fedmesh', 'simulate', ...kept, '--seed', String(seed), '--trace'].map(shellQuote).join(' ')
}

function shellQuote (word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, '\'\\\'\'')}'`
}

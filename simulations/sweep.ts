import { cryptoRng } from '../node/runtime/system-clock.js'

export interface SeedResult {
  seed: number
  ok: boolean
  violation?: { invariant: string, message: string }
  trace: string[]
  config: unknown
}

export interface SweepInit<R extends SeedResult> {
  protocol: string
  seeds: number
  /** The first seed; random (and printed) when omitted. */
  seed: string | undefined
  json: boolean
  /** Flags that reproduce this run, for the replay command printed on failure. */
  replayFlags: string
  run: (seed: number) => Promise<R>
  /** Adds one seed's result to the caller's totals. */
  tally: (result: R) => void
  totals: () => Record<string, number>
  /** The totals for people, printed under the seeds line. */
  summary: () => string
}

/**
 * Runs seeds S, S+1, … until one fails; prints progress, the totals and any failure with the
 * command that replays it. Returns the exit code (0 all ok, 1 a failure).
 */
export async function sweep<R extends SeedResult> (init: SweepInit<R>): Promise<number> {
  // The only non-determinism in the simulator: choosing a first seed when none is given.
  const first = init.seed === undefined ? cryptoRng.nextU32() >>> 1 : Number(init.seed)
  const started = performance.now()
  let count = 0
  let failure: R | undefined
  for (let i = 0; i < init.seeds && failure === undefined; i++) {
    const result = await init.run(first + i)
    count++
    init.tally(result)
    if (!result.ok) failure = result
    if (!init.json && (count % 50 === 0 || count === init.seeds)) console.log(`… ${count}/${init.seeds} seeds`)
  }
  const seconds = (performance.now() - started) / 1000
  const seedsPerMinute = Math.round(count / seconds * 60)
  if (init.json) {
    console.log(JSON.stringify({ firstSeed: first, seeds: count, ...init.totals(), seconds, seedsPerMinute, failure }))
  } else {
    console.log(`${init.protocol}: ${count - (failure === undefined ? 0 : 1)}/${count} seeds ok from seed ${first} in ${seconds.toFixed(1)} s (${seedsPerMinute} seeds/min)`)
    console.log(`  ${init.summary()}`)
    if (failure !== undefined) {
      console.log(`FAILED seed ${failure.seed}: ${failure.violation!.invariant}: ${failure.violation!.message}`)
      console.log(`  config ${JSON.stringify(failure.config)}`)
      console.log(`  last events (replay: npm run sim -- ${init.protocol} --seed ${failure.seed} --seeds 1 ${init.replayFlags} --trace):`)
      for (const line of failure.trace) console.log(`  ${line}`)
    }
  }
  return failure === undefined ? 0 : 1
}

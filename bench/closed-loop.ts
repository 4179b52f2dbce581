import { readFileSync } from 'node:fs'
import { percentile, round } from './stats.js'

// Closed-loop load shared by the consensus benchmarks: C workers, each awaiting its operation before
// issuing the next, measured for a fixed time after a warm-up, with the CPU each process spent.

export interface Level { concurrency: number, ops: number, opsPerSec: number, p50Ms: number, p99Ms: number, errors: number, cpuMsPerOp: number[] }
export type Op = (worker: number, i: number) => Promise<void>
export interface LoopOptions { warmupMs: number, seconds: number }

/** Bounds a worker's loop even if time-keeping went wrong; far above what a few seconds can reach. */
const OPS_PER_WORKER_MAX = 1_000_000
const TICKS_PER_SECOND = 100 // USER_HZ on Linux: /proc/<pid>/stat CPU times are in these

/** Runs C closed-loop workers for `seconds` after a warm-up; latencies of successful ops only. */
export async function closedLoop (concurrency: number, op: Op, pids: number[], options: LoopOptions): Promise<Level> {
  const latencies: number[] = []
  let errors = 0
  let measuring = false
  let stop = false
  const worker = async (w: number): Promise<void> => {
    for (let i = 0; !stop && i < OPS_PER_WORKER_MAX; i++) {
      const t0 = performance.now()
      try {
        await op(w, i)
        if (measuring) latencies.push(performance.now() - t0)
      } catch {
        if (measuring) errors++
      }
    }
  }
  const workers = Array.from({ length: concurrency }, async (_, w) => await worker(w))
  await sleep(options.warmupMs)
  const cpu0 = pids.map(cpuMs)
  const t0 = performance.now()
  measuring = true
  await sleep(options.seconds * 1000)
  measuring = false
  const elapsedMs = performance.now() - t0
  const cpu = pids.map((pid, i) => cpuMs(pid) - cpu0[i]!)
  stop = true
  await Promise.all(workers)
  const ops = latencies.length
  return {
    concurrency, ops, opsPerSec: round(ops / (elapsedMs / 1000), 1), p50Ms: round(percentile(latencies, 50)), p99Ms: round(percentile(latencies, 99)), errors,
    cpuMsPerOp: cpu.map((c) => round(c / Math.max(1, ops), 3))
  }
}

/** CPU time (user + system) a process has used so far, in ms; NaN once it is gone. */
export function cpuMs (pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
    return (Number(fields[11]) + Number(fields[12])) * 1000 / TICKS_PER_SECOND
  } catch {
    return NaN
  }
}

export async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

export function describeLevel (name: string, level: Level): string {
  return `${name} C=${level.concurrency}: ${level.opsPerSec} ops/s, p50 ${level.p50Ms} ms, p99 ${level.p99Ms} ms, errors ${level.errors}, CPU ms/op per process ${level.cpuMsPerOp.join(' / ')}`
}

import { availableParallelism } from 'node:os'
import { extname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'

// Runs one exported function of a module over many inputs on worker threads (a sweep of seeds
// through a simulator), one run per worker at a time. Inputs are drawn lazily, so the iterable may
// be endless and leaving early wastes at most one run per worker; inputs and outputs cross threads
// by structured clone.

export interface SweepPoolInit<I> {
  /** The module, as a file URL, and its export `(input: I) => O | Promise<O>`. */
  module: URL | string
  exportName: string
  inputs: Iterable<I>
  /** Worker threads (default: one per core). */
  workers?: number
}

/** One input's run: its output, or the error it threw (or the worker died of) as text. */
export type SweepOutcome<I, O> = { input: I, index: number } & ({ ok: true, output: O } | { ok: false, error: string })

export interface SweepJob<I> { index: number, input: I }
export type SweepReply<O> = { kind: 'ready' } | { kind: 'done', index: number, ok: true, output: O } | { kind: 'done', index: number, ok: false, error: string }

// The thread side, beside this file: .ts when run through tsx, .js once built. Worker threads do
// not inherit tsx's loader (Node 20 runs no --import in them), so under tsx each registers it first.
const EXTENSION = extname(fileURLToPath(import.meta.url))
const WORKER_ENTRY = new URL(`./sweep-worker${EXTENSION}`, import.meta.url).href
const TSX_API = EXTENSION === '.ts' ? import.meta.resolve('tsx/esm/api') : undefined
const BOOT = `const { workerData } = require('node:worker_threads')
;(async () => {
  if (workerData.tsx !== undefined) (await import(workerData.tsx)).register()
  await import(workerData.entry)
})()`

interface Slot<I> { worker: Worker, ready: boolean, job?: SweepJob<I> }
type PoolEvent<O> = { worker: Worker } & (SweepReply<O> | { kind: 'died', error: string })

/**
 * Outcomes in completion order. Leaving the loop early (break, throw) terminates the workers. A
 * worker that dies mid-run fails that input and is replaced; one that dies with nothing to run
 * (its module does not load) fails the sweep.
 */
export async function * sweepPool<I, O> (init: SweepPoolInit<I>): AsyncGenerator<SweepOutcome<I, O>, void, undefined> {
  const workerData = { entry: WORKER_ENTRY, tsx: TSX_API, module: init.module instanceof URL ? init.module.href : init.module, exportName: init.exportName }
  const events = new EventQueue<PoolEvent<O>>()
  const spawn = (): Slot<I> => {
    const worker = new Worker(BOOT, { eval: true, workerData })
    worker.on('message', (reply: SweepReply<O>) => events.push({ worker, ...reply }))
    worker.on('error', (err) => events.push({ worker, kind: 'died', error: err.stack ?? err.message }))
    worker.on('exit', (code) => events.push({ worker, kind: 'died', error: `the worker exited with code ${code}` }))
    return { worker, ready: false }
  }
  const slots = Array.from({ length: Math.max(1, init.workers ?? availableParallelism()) }, spawn)
  const inputs = init.inputs[Symbol.iterator]()
  let exhausted = false
  let next = 0
  try {
    for (;;) {
      for (const slot of slots) {
        if (!slot.ready || slot.job !== undefined || exhausted) continue
        const drawn = inputs.next()
        if (drawn.done === true) exhausted = true
        else {
          slot.job = { index: next++, input: drawn.value }
          slot.worker.postMessage(slot.job)
        }
      }
      if (exhausted && slots.every((s) => s.job === undefined)) return
      const event = await events.take()
      const at = slots.findIndex((s) => s.worker === event.worker)
      const slot = slots[at]
      if (slot === undefined) continue // a replaced worker's last words
      if (event.kind === 'ready') {
        slot.ready = true
        continue
      }
      const job = slot.job
      if (job === undefined) throw new Error(`sweep worker for ${init.exportName} in ${workerData.module} failed: ${event.kind === 'died' ? event.error : 'a reply to no job'}`)
      slot.job = undefined
      if (event.kind === 'died') {
        slots[at] = spawn()
        void slot.worker.terminate()
        yield { ...job, ok: false, error: event.error }
      } else {
        yield event.ok ? { ...job, ok: true, output: event.output } : { ...job, ok: false, error: event.error }
      }
    }
  } finally {
    await Promise.all(slots.map(async (s) => await s.worker.terminate()))
  }
}

/** An unbounded FIFO with one awaiting reader. */
class EventQueue<T> {
  readonly #items: T[] = []
  #waiting?: (item: T) => void

  push (item: T): void {
    const waiting = this.#waiting
    this.#waiting = undefined
    if (waiting !== undefined) waiting(item)
    else this.#items.push(item)
  }

  async take (): Promise<T> {
    if (this.#items.length > 0) return this.#items.shift()!
    return await new Promise((resolve) => { this.#waiting = resolve })
  }
}

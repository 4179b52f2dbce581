import { parentPort, workerData } from 'node:worker_threads'
import type { SweepJob, SweepReply } from './sweep-pool.js'

// The thread side of sweep-pool.ts: loads the function once, says so, then runs it on each input.
const { module, exportName } = workerData as { module: string, exportName: string }
const fn = (await import(module) as Record<string, unknown>)[exportName]
if (typeof fn !== 'function') throw new Error(`${module} exports no function ${exportName}`)
const port = parentPort!

port.on('message', (job: SweepJob<unknown>) => {
  Promise.resolve().then(async () => await (fn as (input: unknown) => unknown)(job.input)).then(
    (output) => reply({ kind: 'done', index: job.index, ok: true, output }),
    (err: unknown) => reply({ kind: 'done', index: job.index, ok: false, error: err instanceof Error ? err.stack ?? err.message : String(err) }))
})
reply({ kind: 'ready' })

function reply (message: SweepReply<unknown>): void {
  try {
    port.postMessage(message)
  } catch (err) { // an output that cannot be cloned fails its input, not the worker
    if (message.kind !== 'done') throw err
    port.postMessage({ kind: 'done', index: message.index, ok: false, error: `the output cannot cross threads: ${(err as Error).message}` } satisfies SweepReply<unknown>)
  }
}

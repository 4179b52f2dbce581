import type { Logger } from '../../base/log.js'

// One start/stop lifecycle for the components of a node. Components start in order; each is
// remembered once its start succeeded, so stop() — after a full start, or when a start failed part
// way — stops exactly what was started, in reverse.

interface Started { name: string, stop: () => Promise<void> | void }

export class Lifecycle {
  readonly #logger: Logger
  readonly #started: Started[] = []

  constructor (logger: Logger) {
    this.#logger = logger
  }

  /** Starts one component (what start returns is handed to stop); throws, remembering nothing, if start does. */
  async start<T> (name: string, start: () => Promise<T> | T, stop: (started: T) => Promise<void> | void): Promise<T> {
    const started = await start()
    this.#started.push({ name, stop: async () => await stop(started) })
    return started
  }

  /** Stops every started component, newest first; each one stops even if another failed, and the first failure is thrown after. */
  async stop (): Promise<void> {
    const failures: unknown[] = []
    for (const { name, stop } of this.#started.splice(0).reverse()) {
      try {
        await stop()
      } catch (err) {
        this.#logger.warn({ component: name, err: (err as Error).message }, 'component did not stop cleanly')
        failures.push(err)
      }
    }
    if (failures.length > 0) throw failures[0]
  }
}

// A simulator's event trace: printed as it happens (--trace), or else only the last events kept, for
// the report of a failing seed. Events are formatted only when shown.

export interface TraceOptions {
  /** Print every event as it happens. */
  trace?: boolean
  traceEventsMax?: number
  print?: (line: string) => void
}

const TRACE_EVENTS_MAX_DEFAULT = 60

export class SimTrace<E> {
  readonly #events: E[] = []
  readonly #max: number

  constructor (readonly options: TraceOptions, readonly format: (e: E) => string) {
    this.#max = options.traceEventsMax ?? TRACE_EVENTS_MAX_DEFAULT
  }

  record (e: E): void {
    if (this.options.trace === true) {
      (this.options.print ?? console.log)(this.format(e))
      return
    }
    this.#events.push(e)
    if (this.#events.length > 2 * this.#max) this.#events.splice(0, this.#events.length - this.#max)
  }

  /** The last events, formatted. */
  lines (): string[] {
    return this.#events.slice(-this.#max).map(this.format)
  }
}

import assert from 'node:assert/strict'
import type { NewView, Signed, ViewChange } from './messages.js'
import { primaryOf } from './view-change.js'

// A replica's view: which one, whether its NewView is installed (active) or we are still changing to
// it, how long a view change waits (backing off while none succeeds), the latest view change heard
// from each replica and the views others were seen working in.

const BACKOFF_EXPONENT_MAX = 10

export class ViewState {
  readonly #id: string
  readonly #replicas: readonly string[]
  readonly #f: number
  #view = 0
  #active = true
  #backoff = 0
  #changes = 0
  /** When the current view was installed: a new primary's time to order starts there. */
  #sinceTick = 0
  #newView: Signed<NewView> | undefined
  /** The latest (highest-view) valid view change from each replica, ours included. */
  readonly #votes = new Map<string, Signed<ViewChange>>()
  /** Per replica, the latest view we saw it work in (bounded by n). */
  readonly #laterViews = new Map<string, number>()

  constructor (id: string, replicas: readonly string[], f: number) {
    this.#id = id
    this.#replicas = replicas
    this.#f = f
  }

  get view (): number { return this.#view }
  /** False while waiting for the NewView of `view`. */
  get active (): boolean { return this.#active }
  get sinceTick (): number { return this.#sinceTick }
  /** View changes this replica started. */
  get changes (): number { return this.#changes }
  /** The NewView that installed the current view, if one did. */
  get newView (): Signed<NewView> | undefined { return this.#newView }

  primary (): string {
    return primaryOf(this.#replicas, this.#view)
  }

  isPrimary (): boolean {
    return this.primary() === this.#id
  }

  /** A view before ours, or ours once installed: nothing there is news. */
  reached (view: number): boolean {
    return view < this.#view || (view === this.#view && this.#active)
  }

  /** Ticks to wait for a NewView: the request timeout, doubled for every view change in a row that failed. */
  timeoutTicks (requestTimeoutTicks: number): number {
    return requestTimeoutTicks * 2 ** Math.min(this.#backoff, BACKOFF_EXPONENT_MAX)
  }

  /**
   * The view to try once a view change timed out: the next, or the latest any replica asked for, so
   * replicas that drifted apart (one of them alone far ahead) meet again instead of chasing each other.
   */
  nextView (): number {
    return Math.max(this.#view + 1, ...[...this.#votes.values()].map((vc) => vc.body.view))
  }

  /** Leaves the current view for `view`; our view change for it is recorded next. */
  begin (view: number): void {
    assert.ok(view > this.#view || (view === this.#view && this.#active), 'view changes only move forward')
    this.#backoff = this.#active ? 0 : this.#backoff + 1
    this.#view = view
    this.#active = false
    this.#changes++
    this.#newView = undefined
  }

  install (nv: Signed<NewView>, nowTick: number): void {
    this.#view = nv.body.view
    this.#active = true
    this.#backoff = 0
    this.#sinceTick = nowTick
    this.#newView = nv
  }

  own (): Signed<ViewChange> | undefined {
    return this.#votes.get(this.#id)
  }

  /** Whether vc is for a later view than the one its sender asked for last. */
  isNewer (vc: Signed<ViewChange>): boolean {
    const known = this.#votes.get(vc.from)
    return known === undefined || known.body.view < vc.body.view
  }

  record (vc: Signed<ViewChange>): void {
    this.#votes.set(vc.from, vc)
  }

  /** f+1 other replicas want a later view, so a correct one does: the smallest of those views. */
  joinable (): number | undefined {
    const ahead = [...this.#votes.values()].filter((vc) => vc.from !== this.#id && vc.body.view > this.#view)
    return ahead.length >= this.#f + 1 ? Math.min(...ahead.map((vc) => vc.body.view)) : undefined
  }

  /** The view changes for the current view, in replica order. */
  votesForView (): Array<Signed<ViewChange>> {
    return this.#replicas.flatMap((r) => {
      const vc = this.#votes.get(r)
      return vc !== undefined && vc.body.view === this.#view ? [vc] : []
    })
  }

  /**
   * `from` works in `view`: once f+1 replicas work in later views (so a correct one does), the latest
   * view f+1 of them reached, to join.
   */
  laterView (from: string, view: number): number | undefined {
    if ((this.#laterViews.get(from) ?? -1) >= view) return undefined
    this.#laterViews.set(from, view)
    const views = [...this.#laterViews.values()].filter((v) => v > this.#view).sort((a, b) => b - a)
    return views[this.#f]
  }

  /** Replays our persisted view change: waiting for its NewView again. */
  restoreViewChange (vc: Signed<ViewChange>): void {
    if (vc.body.view < this.#view) return
    this.#view = vc.body.view
    this.#active = false
    this.#votes.set(this.#id, vc)
  }

  /** Replays a persisted NewView; false if a later view was restored already. */
  restoreNewView (nv: Signed<NewView>): boolean {
    if (nv.body.view < this.#view) return false
    this.#view = nv.body.view
    this.#active = true
    this.#newView = nv
    return true
  }
}

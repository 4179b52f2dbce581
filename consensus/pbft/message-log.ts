import { bytesEqual } from '../../base/bytes.js'
import type { Commit, PrePrepare, Prepare, PreparedProof, Signed } from './messages.js'

// The normal case's votes per seq of the window (a slot per seq, for the current view only) and the
// prepared certificates a view change must carry, which outlive the view they were formed in.

export interface Slot {
  view: number
  prePrepare?: Signed<PrePrepare>
  prepares: Map<string, Signed<Prepare>>
  commits: Map<string, Signed<Commit>>
  ownPrepare?: Signed<Prepare>
  ownCommit?: Signed<Commit>
  prepared: boolean
  committed: boolean
  /** Replicas we resent our commit to. */
  helped: Set<string>
}

export class MessageLog {
  readonly #slots = new Map<number, Slot>()
  /** Per seq, the prepared certificate of the latest view. */
  readonly #prepared = new Map<number, PreparedProof>()

  /** The slot of seq in view, fresh if the one held is from an earlier view. */
  slot (seq: number, view: number): Slot {
    let slot = this.#slots.get(seq)
    if (slot === undefined || slot.view < view) {
      slot = { view, prepares: new Map(), commits: new Map(), prepared: false, committed: false, helped: new Set() }
      this.#slots.set(seq, slot)
    }
    return slot
  }

  slots (): IterableIterator<[number, Slot]> {
    return this.#slots.entries()
  }

  /** A new view starts with empty slots (its NewView re-proposes what may have committed). */
  clearSlots (): void {
    this.#slots.clear()
  }

  /**
   * Marks the slot prepared once `needed` prepares match its pre-prepare and keeps that certificate;
   * returns its prepares, or undefined if the slot is not (newly) prepared.
   */
  prepare (seq: number, slot: Slot, needed: number): Array<Signed<Prepare>> | undefined {
    const pp = slot.prePrepare
    if (pp === undefined || slot.prepared) return undefined
    const matching = [...slot.prepares.values()].filter((p) => bytesEqual(p.body.digest, pp.body.digest))
    if (matching.length < needed) return undefined
    slot.prepared = true
    const prepares = matching.slice(0, needed)
    const known = this.#prepared.get(seq)
    if (known === undefined || known.prePrepare.body.view <= pp.body.view) this.#prepared.set(seq, { prePrepare: pp, prepares })
    return prepares
  }

  /** The prepared certificates above the stable checkpoint, by seq: what our view change carries. */
  preparedAbove (low: number): PreparedProof[] {
    return [...this.#prepared.values()].filter((p) => p.prePrepare.body.seq > low).sort((a, b) => a.prePrepare.body.seq - b.prePrepare.body.seq)
  }

  collectThrough (seq: number): void {
    for (const map of [this.#slots, this.#prepared]) for (const s of [...map.keys()]) if (s <= seq) map.delete(s)
  }
}

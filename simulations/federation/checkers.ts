import { toHex } from '../../base/bytes.js'
import type { Task } from '../../node/org/task-board.js'
import type { SimPacket } from '../world/sim-transport.js'
import { replicaMessageOf } from './pbft-packets.js'

// The whole-federation invariants, checked as the run goes (signatures on the wire, Raft leaders)
// and at its end (boards, audit chains). A violation carries the invariant's name and what broke it.

export class FederationViolation extends Error {
  constructor (readonly invariant: string, message: string) {
    super(message)
    this.name = 'FederationViolation'
  }
}

const SLOT_TYPES = new Set(['PrePrepare', 'Prepare', 'Commit', 'Checkpoint'])

/**
 * An honest org never signs two different PBFT messages for one slot, across all its leader
 * changes: every PBFT envelope its nodes send is opened and its (type, view, seq) remembered with
 * its digest; a second digest for the same slot is equivocation by an org that did not mean to.
 */
export class SlotSignatures {
  readonly #digests = new Map<string, { hex: string, node: string, tMs: number }>()
  checked = 0

  observe (org: string, node: string, tMs: number, packet: SimPacket): void {
    const message = replicaMessageOf(packet)
    if (message === undefined) return
    const { instance, m } = message
    const body = m.body as { type: string, view?: number, seq?: number, digest?: Uint8Array, stateDigest?: Uint8Array }
    if (!SLOT_TYPES.has(body.type)) return
    const digest = body.digest ?? body.stateDigest
    if (digest === undefined) return
    this.checked++
    const slot = `${instance.slice(0, 12)} ${m.from.slice(0, 12)} ${body.type} v${body.view ?? '-'} s${body.seq ?? '-'}`
    const hex = toHex(digest)
    const seen = this.#digests.get(slot)
    if (seen === undefined) this.#digests.set(slot, { hex, node, tMs })
    else if (seen.hex !== hex) {
      throw new FederationViolation('honest-equivocation', `org ${org} signed two ${body.type}s for one slot (${slot}): ${seen.hex.slice(0, 12)} from ${seen.node} at ${seen.tMs} ms, then ${hex.slice(0, 12)} from ${node}`)
    }
  }
}

/** Raft election safety in every org: at most one leader per term. */
export class RaftLeaders {
  readonly #leaders = new Map<string, string>()
  changes = 0

  /** True the first time this term's leader is seen. */
  observe (org: string, node: string, term: number): boolean {
    const key = `${org} ${term}`
    const leader = this.#leaders.get(key)
    if (leader === undefined) {
      this.#leaders.set(key, node)
      this.changes++
      return true
    }
    if (leader !== node) {
      throw new FederationViolation('raft-election-safety', `org ${org} had two leaders in term ${term}: ${leader} and ${node}`)
    }
    return false
  }
}

/** A federated task's coordinates and proposal number (its title is `sim-<n>`), from a board copy. */
export function federatedCopy (t: Task): { ref: string, n: number } | undefined {
  const p = t.payload as { federation?: { epoch: number, seq: number, position: number } } | null
  const f = p?.federation
  if (f === undefined) return undefined
  const n = /^sim-(\d+)$/.exec(t.title)
  return { ref: `${f.epoch}.${f.seq}.${f.position}`, n: n === null ? -1 : Number(n[1]) }
}

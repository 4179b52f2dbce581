import assert from 'node:assert/strict'
import type { Announcement } from './announcement.js'

// The pure membership state machine. Input: verified announcements and the current time; output:
// the changes to report. No I/O, no clock: the shell passes nowMs in. A member's freshness is the pair
// (incarnation, seq): the incarnation grows on each restart, seq with each heartbeat of one run.
//
//   alive --(no word for suspectAfterMs)--> suspect --(no word for deadAfterMs)--> dead
//   suspect --(fresh alive)--> alive;  dead/left --(higher incarnation)--> alive (rejoined)
//   any --(leave for the current or a newer incarnation)--> left
//   dead/left --(forgetAfterMs)--> forgotten
//   alive/suspect --(expel: its organisation was revoked)--> dead; the shell refuses its announcements
export type MemberStatus = 'alive' | 'suspect' | 'dead' | 'left'

export interface Member {
  key: string
  org: string
  /** The org root key (hex) its certificate chains to: the org's identity; `org` is its name. */
  root: string
  addrs: string[]
  capabilities: string[]
  incarnation: number
  seq: number
  status: MemberStatus
  /** When we last heard from it (the shell's clock) and when its status last changed. */
  lastHeardMs: number
  sinceMs: number
}

export type MemberChangeKind = 'joined' | 'rejoined' | 'recovered' | 'suspected' | 'died' | 'left' | 'forgotten' | 'expelled'

export interface MemberChange {
  kind: MemberChangeKind
  member: Readonly<Member>
}

export interface MembershipConfig {
  suspectAfterMs: number
  deadAfterMs: number
  forgetAfterMs: number
  membersMax: number
}

export type ReceiveResult =
  | { verdict: 'accept', change?: MemberChange }
  | { verdict: 'ignore', reason: 'stale' | 'unknown-leave' | 'table-full' | 'self' }

export class MembershipCore {
  readonly #members = new Map<string, Member>()

  constructor (readonly selfKey: string, readonly config: MembershipConfig) {
    assert.ok(config.suspectAfterMs > 0 && config.deadAfterMs > config.suspectAfterMs, 'deadAfterMs must exceed suspectAfterMs')
    assert.ok(config.membersMax > 0)
  }

  receive (a: Announcement, nowMs: number): ReceiveResult {
    if (a.key === this.selfKey) return { verdict: 'ignore', reason: 'self' }
    const known = this.#members.get(a.key)
    if (known === undefined) {
      if (a.kind === 'leave') return { verdict: 'ignore', reason: 'unknown-leave' }
      if (this.#members.size >= this.config.membersMax) return { verdict: 'ignore', reason: 'table-full' }
      const member: Member = { ...pick(a), status: 'alive', lastHeardMs: nowMs, sinceMs: nowMs }
      this.#members.set(a.key, member)
      return { verdict: 'accept', change: { kind: 'joined', member: { ...member } } }
    }
    const newer = a.incarnation > known.incarnation || (a.incarnation === known.incarnation && a.seq > known.seq)
    if (!newer) return { verdict: 'ignore', reason: 'stale' }
    // A leave ends an incarnation: later heartbeats of the same incarnation are stale.
    if (known.status === 'left' && a.incarnation === known.incarnation) return { verdict: 'ignore', reason: 'stale' }
    const before = known.status
    Object.assign(known, pick(a), { lastHeardMs: nowMs })
    if (a.kind === 'leave') {
      return before === 'left' ? { verdict: 'accept' } : { verdict: 'accept', change: this.#transition(known, 'left', 'left', nowMs) }
    }
    if (before === 'alive') return { verdict: 'accept' }
    const kind = before === 'suspect' ? 'recovered' : 'rejoined'
    return { verdict: 'accept', change: this.#transition(known, 'alive', kind, nowMs) }
  }

  /** Advances failure detection to nowMs; returns the changes in key order (deterministic). */
  tick (nowMs: number): MemberChange[] {
    const changes: MemberChange[] = []
    for (const key of [...this.#members.keys()].sort()) {
      const m = this.#members.get(key)!
      const silentMs = nowMs - m.lastHeardMs
      if (m.status === 'alive' && silentMs > this.config.suspectAfterMs) {
        changes.push(this.#transition(m, 'suspect', 'suspected', nowMs))
      } else if (m.status === 'suspect' && silentMs > this.config.deadAfterMs) {
        changes.push(this.#transition(m, 'dead', 'died', nowMs))
      } else if ((m.status === 'dead' || m.status === 'left') && nowMs - m.sinceMs > this.config.forgetAfterMs) {
        this.#members.delete(key)
        changes.push({ kind: 'forgotten', member: m })
      }
    }
    return changes
  }

  /** Marks a live member dead at once (its organisation was revoked); undefined if it is not live. */
  expel (key: string, nowMs: number): MemberChange | undefined {
    const m = this.#members.get(key)
    if (m === undefined || m.status === 'dead' || m.status === 'left') return undefined
    return this.#transition(m, 'dead', 'expelled', nowMs)
  }

  get (key: string): Readonly<Member> | undefined {
    return this.#members.get(key)
  }

  members (): ReadonlyArray<Readonly<Member>> {
    return [...this.#members.values()].sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : 0)
  }

  #transition (m: Member, status: MemberStatus, kind: MemberChangeKind, nowMs: number): MemberChange {
    assert.notEqual(m.status, status, `member ${m.key} is already ${status}`)
    m.status = status
    m.sinceMs = nowMs
    return { kind, member: { ...m } }
  }
}

function pick (a: Announcement): Omit<Member, 'status' | 'lastHeardMs' | 'sinceMs'> {
  return { key: a.key, org: a.org, root: a.root, addrs: [...a.addrs], capabilities: [...a.capabilities], incarnation: a.incarnation, seq: a.seq }
}

import assert from 'node:assert/strict'

// What the leader knows about one follower's log (etcd's tracker.Progress). In 'probe' the leader
// sends one MsgApp per heartbeat until it finds the match point; in 'replicate' it streams
// optimistically with at most inflightMax un-acknowledged MsgApps; in 'snapshot' it waits for the
// follower to acknowledge an InstallSnapshot.

export type ProgressState = 'probe' | 'replicate' | 'snapshot'

export class Progress {
  match = 0
  next: number
  state: ProgressState = 'probe'
  probeSent = false
  pendingSnapshot = 0
  /** Set by any message from the peer; check-quorum clears it once per election timeout. */
  recentActive = true
  /** Last index of each in-flight MsgApp, oldest first. */
  readonly inflight: number[] = []

  constructor (next: number, readonly inflightMax: number) {
    this.next = next
  }

  paused (): boolean {
    if (this.state === 'probe') return this.probeSent
    if (this.state === 'snapshot') return true
    return this.inflight.length >= this.inflightMax
  }

  becomeProbe (): void {
    this.next = this.state === 'snapshot' ? Math.max(this.match + 1, this.pendingSnapshot + 1) : this.match + 1
    this.state = 'probe'
    this.probeSent = false
    this.pendingSnapshot = 0
    this.inflight.length = 0
  }

  becomeReplicate (): void {
    this.state = 'replicate'
    this.next = this.match + 1
    this.pendingSnapshot = 0
    this.inflight.length = 0
  }

  becomeSnapshot (index: number): void {
    this.state = 'snapshot'
    this.pendingSnapshot = index
    this.inflight.length = 0
  }

  /** An MsgApp carrying entries up to lastIndex went out. */
  sent (lastIndex: number, entryCount: number): void {
    if (this.state === 'replicate' && entryCount > 0) {
      this.next = lastIndex + 1
      this.inflight.push(lastIndex)
      assert.ok(this.inflight.length <= this.inflightMax, 'too many in-flight appends')
    } else if (this.state === 'probe') {
      this.probeSent = true
    }
  }

  /** The follower acknowledged its log up to index; false when stale. */
  maybeUpdate (index: number): boolean {
    while (this.inflight.length > 0 && this.inflight[0]! <= index) this.inflight.shift()
    if (index <= this.match) return false
    this.match = index
    this.next = Math.max(this.next, index + 1)
    this.probeSent = false
    return true
  }

  /** The follower rejected an append at `rejected`; hint is its guess of the last matching index. */
  maybeDecrTo (rejected: number, hint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false
      this.becomeProbe()
      return true
    }
    if (this.next - 1 !== rejected) return false
    this.next = Math.max(Math.min(rejected, hint + 1), this.match + 1)
    this.probeSent = false
    return true
  }
}

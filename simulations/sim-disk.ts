import { MemoryStorage } from '../base/memory-storage.js'
import type { RaftReady } from '../consensus/raft/raft.js'
import { RaftPersistence } from '../consensus/raft/raft-persistence.js'
import type { RaftStorage } from '../consensus/raft/raft-storage.js'
import type { ConfState } from '../consensus/types.js'

// A node's simulated disk: MemoryStorage behind the production RaftPersistence, plus write latency.
// A Ready handed to the disk becomes durable only when its write completes, ticks later; a crash
// before then loses it (the unsynced write), and the node restarts from what was durable.

export class SimDisk {
  #storage = new MemoryStorage()
  #persistence = new RaftPersistence(this.#storage, 'sim')
  #pending: { ready: RaftReady, doneTick: number } | undefined

  constructor (readonly founders: ConfState | undefined) {}

  get busy (): boolean { return this.#pending !== undefined }

  /** Starts writing a Ready; it is durable once complete() returns it. */
  submit (ready: RaftReady, doneTick: number): void {
    if (this.#pending !== undefined) throw new Error('one write at a time')
    this.#pending = { ready, doneTick }
  }

  /** Finishes the pending write if it is due: returns its Ready, now durable. */
  async complete (nowTick: number): Promise<RaftReady | undefined> {
    const pending = this.#pending
    if (pending === undefined || pending.doneTick > nowTick) return undefined
    this.#pending = undefined
    await this.#persistence.save(pending.ready)
    return pending.ready
  }

  /** Power loss: the pending write is lost; returns whether there was one. */
  crash (): boolean {
    const lost = this.#pending !== undefined
    this.#pending = undefined
    this.#storage = this.#storage.crash()
    this.#persistence = new RaftPersistence(this.#storage, 'sim')
    return lost
  }

  async load (): Promise<RaftStorage> {
    return await this.#persistence.load(this.founders)
  }
}

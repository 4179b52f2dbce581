import { toHex } from '../../base/bytes.js'
import { type PbftMessage, type Signed, type ViewChange, sha256, signingBytes } from './messages.js'
import type { Evidence } from './outbox.js'

// Who said what: signatures of replica messages, checked once each (certificates repeat the votes
// a replica already checked), and the equivocation watch over what checked out — two different
// validly signed messages from one replica for one (type, view, seq) are evidence against it.

export type VerifyFn = (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) => boolean

interface Seen { view: number, seq: number, hash: string, message: PbftMessage, reported: boolean }

export class Authenticator {
  readonly #replicas: readonly string[]
  readonly #publicKeys: ReadonlyMap<string, Uint8Array>
  readonly #verify: VerifyFn
  readonly #logWindow: number
  readonly #report: (e: Evidence) => void
  /** Signature (hex) to the sha256 of the bytes it signs. */
  readonly #verified = new Map<string, string>()
  readonly #seen = new Map<string, Seen>()

  constructor (init: { replicas: readonly string[], publicKeys: ReadonlyMap<string, Uint8Array>, verify: VerifyFn, logWindow: number, report: (e: Evidence) => void }) {
    this.#replicas = init.replicas
    this.#publicKeys = init.publicKeys
    this.#verify = init.verify
    this.#logWindow = init.logWindow
    this.#report = init.report
  }

  isReplica (id: string): boolean {
    return this.#publicKeys.has(id) && this.#replicas.includes(id)
  }

  /** True iff the signature is valid and the sender is a replica. */
  verify (m: Signed): boolean {
    const key = this.#publicKeys.get(m.from)
    if (key === undefined || !this.#replicas.includes(m.from)) return false
    const id = toHex(m.signature)
    const bytes = signingBytes(m.from, m.body)
    const hash = toHex(sha256(bytes))
    if (this.#verified.get(id) === hash) return true
    if (!this.#verify(key, bytes, m.signature)) return false
    if (this.#verified.size >= 16 * this.#logWindow * this.#replicas.length) this.#verified.clear()
    this.#verified.set(id, hash)
    return true
  }

  /** Certificates carry other replicas' signed votes: an equivocating primary shows up here. */
  watchCertificates (vc: ViewChange): void {
    for (const p of vc.prepared) {
      this.watch(p.prePrepare)
      for (const pr of p.prepares) this.watch(pr)
    }
  }

  /** Remembers a verified message, or reports it (once) if its sender signed another one in its place. */
  watch (m: PbftMessage): void {
    const b = m.body
    // A Status changes as we progress and a Committed is a relay: only the votes inside are watched.
    if (b.type === 'Request' || b.type === 'Reply' || b.type === 'Status' || b.type === 'Committed') return
    const view = 'view' in b ? b.view : 0
    const seq = 'seq' in b ? b.seq : 0
    const key = `${b.type}|${m.from}|${view}|${seq}`
    const hash = this.#verified.get(toHex(m.signature))
    if (hash === undefined) return
    const seen = this.#seen.get(key)
    if (seen === undefined) {
      if (this.#seen.size < 8 * this.#replicas.length * this.#logWindow) this.#seen.set(key, { view, seq, hash, message: m, reported: false })
      return
    }
    if (seen.hash === hash || seen.reported) return
    seen.reported = true
    this.#report({ replica: m.from, first: seen.message, second: m })
  }

  /** Forgets the votes at or below a stable checkpoint (view-level messages are kept). */
  forgetThrough (seq: number): void {
    for (const [key, s] of this.#seen) if (s.seq !== 0 && s.seq <= seq) this.#seen.delete(key)
  }
}

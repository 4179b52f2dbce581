import { FederationError } from './errors.js'
import { type FederationConfig, instanceId } from './config.js'
import { type FederationState } from './state.js'

// The epochs a node follows: the one it started from (genesis, or an admitted org's import), the
// current one (the org's applied federation state moves it on) and the one before, whose members
// may still speak while its replica retires.

export class FederationEpochs {
  readonly initial: FederationConfig
  #current: FederationConfig
  #previous: FederationConfig | undefined

  constructor (initial: FederationConfig, current: FederationConfig) {
    this.initial = initial
    this.#current = current
  }

  get current (): FederationConfig {
    return this.#current
  }

  /** Enters the epoch the org's applied state reached; true if that is a new one. */
  follow (state: FederationState | undefined): boolean {
    if (state === undefined || state.config.epoch <= this.#current.epoch) return false
    this.#previous = this.#current
    this.#current = state.config
    return true
  }

  /** The epoch config an instance id names: the current epoch or the one before it. */
  configOf (instance: unknown): FederationConfig | undefined {
    for (const c of [this.#current, this.#previous]) if (c !== undefined && instanceId(c) === instance) return c
    return undefined
  }

  isMember (root: string): boolean {
    return this.#current.orgs.some((o) => o.root === root)
  }

  /** A member org's root from its name or root key. */
  memberRoot (org: string): string {
    const found = this.#current.orgs.find((o) => o.name === org || o.root === org.toLowerCase())
    if (found === undefined) throw new FederationError('not-a-member', `org '${org}' is not a member of the federation`)
    return found.root
  }

  orgName (root: string): string {
    return [this.#current, this.#previous].flatMap((c) => c?.orgs ?? []).find((o) => o.root === root)?.name ?? root.slice(0, 16)
  }
}

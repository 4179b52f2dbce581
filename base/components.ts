import type { Clock, Rng } from './clock.js'
import type { Signer } from './ed25519.js'
import type { Logger } from './log.js'
import type { Transport } from './transport.js'

/** What every service of a node is given (js-libp2p's components style): who we are and the world. */
export interface NodeComponents {
  signer: Signer
  org: string
  transport: Transport
  clock: Clock
  rng: Rng
  logger: Logger
  /** Whether the federation revoked the organisation with this root key (hex): refuse its nodes. */
  isOrgRevoked: (root: string) => boolean
}

import { readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import type { Clock } from '../../base/clock.js'
import { FedmeshError } from '../../base/errors.js'
import type { Logger } from '../../base/log.js'
import type { Transport } from '../../base/transport.js'
import { publicKeyOfPeerId } from './key-file.js'

// Finding the mesh. Bootstrap addresses are checked before anything is written; a first start must
// reach one (a bounded retry with a progress line per attempt) before it founds or joins an org, so
// a typo never founds an org by accident. Afterwards the node redials whenever it finds itself alone,
// through the bootstrap addresses and the ones it learned — its join token's and every alive member's
// announced ones, kept in <data-dir>/peers.json — so a restart without --bootstrap finds its mesh.
export const PEERS_FILE = 'peers.json'
export const KNOWN_ADDRESSES_MAX = 128
const PEER_ADDRESSES_MAX = 8
export const FIRST_REACH_ATTEMPTS = 5
export const FIRST_REACH_INTERVAL_MS = 1000

export class BootstrapError extends FedmeshError {
  constructor (code: 'bootstrap-malformed' | 'bootstrap-wrong-peer' | 'bootstrap-unreachable' | 'org-unspecified', message: string) {
    super(code, message)
    this.name = 'BootstrapError'
  }
}

/** The peer id a multiaddr names (its last /p2p/ component), if any. */
export function peerIdOfAddress (address: string): string | undefined {
  const at = address.lastIndexOf('/p2p/')
  return at < 0 ? undefined : address.slice(at + 5).split('/')[0]
}

/** Refuses an address that does not parse or names no ed25519 peer id: before anything is written. */
export function checkBootstrapAddresses (addresses: string[]): void {
  for (const address of addresses) {
    try {
      multiaddr(address)
    } catch (err) {
      throw new BootstrapError('bootstrap-malformed', `--bootstrap ${address}: not a multiaddr (${(err as Error).message}); expected /ip4/HOST/tcp/PORT/p2p/PEER_ID`)
    }
    const peerId = peerIdOfAddress(address)
    if (peerId === undefined || publicKeyOfPeerId(peerId) === undefined) {
      throw new BootstrapError('bootstrap-malformed', `--bootstrap ${address}: ${peerId === undefined ? 'names no peer' : `'${peerId}' is not a fedmesh peer id`}; expected /ip4/HOST/tcp/PORT/p2p/PEER_ID (the address fedmesh start prints)`)
    }
  }
}

/**
 * A first start's check: dials every bootstrap address until one connects, at most attempts times;
 * a wrong peer id fails at once (retrying cannot fix it). Throws one line naming each address's problem.
 */
export async function reachBootstrap (transport: Transport, addresses: string[], init: { clock: Clock, logger: Logger, attempts?: number, intervalMs?: number }): Promise<void> {
  const attempts = init.attempts ?? FIRST_REACH_ATTEMPTS
  const problems = new Map<string, string>()
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const results = await Promise.allSettled(addresses.map(async (a) => await transport.dial([a])))
    if (results.some((r) => r.status === 'fulfilled')) return
    results.forEach((r, i) => { if (r.status === 'rejected') problems.set(addresses[i]!, dialProblem(addresses[i]!, r.reason)) })
    const wrongPeer = [...problems.values()].find((p) => p.includes('is not the peer'))
    if (wrongPeer !== undefined) throw new BootstrapError('bootstrap-wrong-peer', `cannot join through --bootstrap: ${wrongPeer}`)
    if (attempt < attempts) {
      init.logger.warn({ attempt, attempts, problems: Object.fromEntries(problems) }, `bootstrap not reachable yet (attempt ${attempt}/${attempts}), retrying`)
      await init.clock.sleep(init.intervalMs ?? FIRST_REACH_INTERVAL_MS)
    }
  }
  throw new BootstrapError('bootstrap-unreachable', `cannot reach any --bootstrap address after ${attempts} attempts (${[...problems.values()].join('; ')}); nothing was founded or joined: check the address and that the node there runs`)
}

function dialProblem (address: string, err: unknown): string {
  const message = (err as Error).message ?? String(err)
  const mismatch = /Payload identity key (\S+) does not match expected remote identity key (\S+)/.exec(message)
  if (mismatch !== null) return `${address} is not the peer it names: the node there is ${mismatch[1]!}`
  return `${address}: ${message.split('\n')[0]!.slice(0, 200)}`
}

export interface KeepBootstrappedInit {
  transport: Transport
  bootstrap: string[]
  known: KnownAddresses
  /** The addresses alive members announce now (learned and saved once a tick). */
  learned: () => string[]
  everyMs: number
  clock: Clock
  logger: Logger
}

/**
 * Once a tick: remembers what members announce, and redials the bootstrap and known addresses
 * whenever the node is alone (the bootstrap node may start later, or restart). Returns the stop.
 */
export function keepBootstrapped (init: KeepBootstrappedInit): () => void {
  const { transport, known, logger } = init
  const tick = (): void => {
    known.remember(init.learned())
    known.save().catch((err) => logger.warn({ err: (err as Error).message }, 'cannot save the known peer addresses'))
    if (transport.connectedPeers().length > 0) return
    for (const group of byPeer([...init.bootstrap, ...known.list()])) {
      transport.dial(group).catch((err) => logger.warn({ addresses: group, err: (err as Error).message }, 'bootstrap dial failed'))
    }
  }
  tick()
  return init.clock.every(init.everyMs, tick)
}

/** One dial per peer, with all of its addresses. */
function byPeer (addresses: string[]): string[][] {
  const groups = new Map<string, string[]>()
  for (const address of new Set(addresses)) {
    const peer = peerIdOfAddress(address) ?? address
    groups.set(peer, [...(groups.get(peer) ?? []), address])
  }
  return [...groups.values()]
}

/** The addresses this node learned, most recently seen first, persisted in <data-dir>/peers.json. */
export class KnownAddresses {
  readonly #path: string
  readonly #selfPeerId: string
  #addresses: string[]
  #saved: string

  private constructor (path: string, selfPeerId: string, addresses: string[]) {
    this.#path = path
    this.#selfPeerId = selfPeerId
    this.#addresses = addresses
    this.#saved = JSON.stringify(addresses)
  }

  /** Loads the file; a missing or unreadable one is an empty list (it is only a hint). */
  static async load (dataDir: string, selfPeerId: string, logger: Logger): Promise<KnownAddresses> {
    const path = join(dataDir, PEERS_FILE)
    let addresses: string[] = []
    try {
      const value = JSON.parse(await readFile(path, 'utf8')) as { addrs?: unknown }
      if (Array.isArray(value.addrs)) addresses = value.addrs.filter((a): a is string => typeof a === 'string' && isDialable(a))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') logger.warn({ path, err: (err as Error).message }, 'ignoring an unreadable peers file')
    }
    return new KnownAddresses(path, selfPeerId, addresses.slice(0, KNOWN_ADDRESSES_MAX))
  }

  list (): string[] {
    return [...this.#addresses]
  }

  /** Puts these addresses first (a peer's at most PEER_ADDRESSES_MAX), keeping the list bounded. */
  remember (addresses: string[]): void {
    const fresh = addresses.filter((a) => isDialable(a) && peerIdOfAddress(a) !== this.#selfPeerId)
    const perPeer = new Map<string, number>()
    const kept = [...new Set([...fresh, ...this.#addresses])].filter((a) => {
      const peer = peerIdOfAddress(a)!
      perPeer.set(peer, (perPeer.get(peer) ?? 0) + 1)
      return perPeer.get(peer)! <= PEER_ADDRESSES_MAX
    })
    this.#addresses = kept.slice(0, KNOWN_ADDRESSES_MAX)
  }

  /** Writes the file if the list changed (atomically: a crash leaves the old one or the new one). */
  async save (): Promise<void> {
    const text = JSON.stringify(this.#addresses)
    if (text === this.#saved) return
    await writeFile(this.#path + '.tmp', JSON.stringify({ addrs: this.#addresses }, null, 2) + '\n', { mode: 0o600 })
    await rename(this.#path + '.tmp', this.#path)
    this.#saved = text
  }
}

function isDialable (address: string): boolean {
  try {
    checkBootstrapAddresses([address])
    return true
  } catch {
    return false
  }
}

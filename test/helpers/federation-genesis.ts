import '../../node/runtime/polyfills.js'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createGenesis, writeGenesis, type Genesis, type PbftParams } from '../../node/federation/genesis.js'
import { loadOrCreateIdentity } from '../../node/runtime/key-file.js'
import { type NodeIdentity } from '../../base/ed25519.js'
import { silentLogger } from '../../base/log.js'
import { FedmeshNode, type FedmeshNodeInit } from '../../node/node.js'
import { ORG_ROOT_KEY_FILE } from '../../node/org/org-identity.js'
import type { Task } from '../../node/org/task-board.js'
import { waitFor } from './cli-node.js'

/**
 * Makes each org's root key in dirOf(org) (the org's founding node's data dir) and one genesis over
 * them, signed by the first org; writing it where it is needed is the caller's part.
 */
export async function foundFederation (orgs: string[], dirOf: (org: string) => string, pbft: PbftParams): Promise<Genesis> {
  const roots: NodeIdentity[] = []
  for (const org of orgs) {
    await mkdir(dirOf(org), { recursive: true })
    roots.push((await loadOrCreateIdentity(dirOf(org), ORG_ROOT_KEY_FILE)).identity)
  }
  return createGenesis(roots[0]!, orgs.map((name, i) => ({ name, root: roots[i]!.publicKeyHex })), Date.now(), pbft)
}

/** A task on an org's board that came through the federation (its payload carries the coordinates). */
export function isFederated (t: Task): boolean {
  return typeof t.payload === 'object' && t.payload !== null && 'federation' in t.payload
}

/** One in-process FedmeshNode per org on 127.0.0.1, federated by one genesis, each hosting its org's replica. */
export class InProcessFederation {
  readonly nodes = new Map<string, FedmeshNode>()

  private constructor (readonly root: string, readonly genesis: Genesis, readonly options: Partial<FedmeshNodeInit>) {}

  static async start (orgs: string[], options: Partial<FedmeshNodeInit> = {}): Promise<InProcessFederation> {
    const root = await mkdtemp(join(tmpdir(), 'fedmesh-federation-'))
    const genesis = await foundFederation(orgs, (name) => join(root, name), { checkpointInterval: 4, viewChangeTimeoutMs: 2000 })
    const f = new InProcessFederation(root, genesis, options)
    for (const name of orgs) await writeGenesis(f.dir(name), genesis)
    const first = await f.startNode(orgs[0]!, [])
    for (const name of orgs.slice(1)) await f.startNode(name, first.multiaddrs())
    await waitFor('every node to host its org\'s replica', () => orgs.every((n) => f.node(n).status().federation?.hosting === true), 15_000)
    return f
  }

  dir (name: string): string { return join(this.root, name) }

  node (name: string): FedmeshNode {
    const n = this.nodes.get(name)
    if (n === undefined) throw new Error(`no node ${name}`)
    return n
  }

  /** Starts (or adds) the node of org `name` from its data dir; the genesis must be there. */
  async startNode (name: string, bootstrap: string[]): Promise<FedmeshNode> {
    const node = await FedmeshNode.start({
      dataDir: this.dir(name), org: name, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap, api: null, heartbeatMs: 200, logger: silentLogger, ...this.options
    })
    this.nodes.set(name, node)
    return node
  }

  async stop (): Promise<void> {
    for (const n of this.nodes.values()) await n.stop()
    await rm(this.root, { recursive: true, force: true })
  }
}

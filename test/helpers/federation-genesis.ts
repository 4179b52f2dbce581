import { mkdir } from 'node:fs/promises'
import { createGenesis, type Genesis, type PbftParams } from '../../node/genesis.js'
import { loadOrCreateIdentity, type NodeIdentity } from '../../node/identity.js'
import { ORG_ROOT_KEY_FILE } from '../../node/org-identity.js'
import type { Task } from '../../node/tasks.js'

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

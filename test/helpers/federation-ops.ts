import { type FederationOp, signOp } from '../../node/federation/ops.js'
import type { FederationConfig } from '../../node/federation/config.js'
import type { BatchRequest } from '../../node/federation/state.js'
import { NodeIdentity } from '../../base/ed25519.js'
import { encodeCertificate, issueCertificate } from '../../base/org-certificate.js'
import { generateIdentity } from '../../node/runtime/key-file.js'

// Orgs with a certified node each, and signed federation requests, for tests of the federation state.

export interface TestOrg { name: string, root: NodeIdentity, node: NodeIdentity, certificate: Uint8Array }

export function makeOrg (name: string): TestOrg {
  const root = generateIdentity()
  const node = generateIdentity()
  const certificate = encodeCertificate(issueCertificate(root, { org: name, node: node.publicKey, issuedAtMs: 1 }))
  return { name, root, node, certificate }
}

export function configOf (genesis: string, orgs: TestOrg[]): FederationConfig {
  return { genesis, epoch: 0, orgs: orgs.map((o) => ({ name: o.name, root: o.root.publicKeyHex })).sort((a, b) => a.root < b.root ? -1 : 1) }
}

let clients = 0
export function signedRequest (org: TestOrg, instance: string, op: FederationOp, client = `${org.root.publicKeyHex}.${org.node.publicKeyHex}.c${++clients}`): BatchRequest {
  return { client, timestamp: 1, op: signOp(org.node, org.certificate, { instance, client, timestamp: 1 }, op) }
}

export const taskOp = (title: string): FederationOp => ({ kind: 'task', title, capability: 'ops', payload: '{"n":1}', target: null })

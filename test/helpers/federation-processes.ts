import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent, request } from 'undici'
import type { FederationReceipt, FederationStatus } from '../../node/federation/federation.js'
import { PBFT_PARAMS_DEFAULT, writeGenesis, type Genesis, type PbftParams } from '../../node/federation/genesis.js'
import type { NodeStatus } from '../../node/node.js'
import { inviteToken } from '../../node/org/org-identity.js'
import type { Task } from '../../node/org/task-board.js'
import { CliNode, waitFor } from './cli-node.js'
import { foundFederation } from './federation-genesis.js'

// A federation of `fedmesh start` processes on loopback, shared by the process tests and bench:pbft:
// each org's root key is made first so one genesis can name them all; every node's data dir gets that
// genesis; the org's first node founds it (`start --org`), the others join with invite tokens
// (`start --join`), so each org is one Raft group and hosts one PBFT replica on its Raft leader.

export const ORGS_DEFAULT = ['alpha', 'bravo', 'charlie', 'delta']
/** Above the node's own 30 s proposal timeout, so a hung request still ends. */
const HTTP_TIMEOUT_MS_DEFAULT = 45_000
const READY_TIMEOUT_MS = 60_000
/** A busy box starts a dozen processes slowly; a join waits for the org's Raft membership change. */
const START_TIMEOUT_MS = 40_000
const HTTP_CONNECTIONS_MAX = 512
const LIST_PAGE = 1000
/** Far above any test or bench board; bounds the paging loop. */
const BOARD_TASKS_MAX = 1_000_000

export interface ProcessFederationInit {
  /** Nodes per org: the founder plus nodesPerOrg − 1 members joined by invite tokens. */
  nodesPerOrg: number
  orgs?: string[]
  /** Extra `fedmesh start` flags for every node (timing: heartbeat, Raft tick). */
  args?: string[]
  pbft?: PbftParams
  /** Proposals without their own timeout give up after this. */
  httpTimeoutMs?: number
}

export interface FederationPlacement { id: string, seq: number, position: number, org: string, root: string, proposer: string }
/** A cross-org task as an org's board holds it. */
export type FederatedTask = Task & { payload: { federation: FederationPlacement, payload: unknown } }
export interface NewFederatedTask { title: string, capability: string, payload?: unknown }

export class ProcessFederation {
  readonly #agent: Agent
  readonly #args: string[]
  /** Every process started, so a failed start or stop() leaves none behind. */
  readonly #spawned: CliNode[] = []

  private constructor (
    readonly root: string,
    readonly genesis: Genesis,
    /** Org names in the order given (genesis order is by root key). */
    readonly orgs: string[],
    /** Every node, grouped by org in genesis-name order; a restarted node takes its old slot. */
    readonly nodes: CliNode[],
    init: ProcessFederationInit
  ) {
    this.#args = init.args ?? []
    const timeoutMs = init.httpTimeoutMs ?? HTTP_TIMEOUT_MS_DEFAULT
    this.#agent = new Agent({ connections: HTTP_CONNECTIONS_MAX, headersTimeout: timeoutMs, bodyTimeout: timeoutMs })
  }

  /** Starts every node, waits for every org to host its replica, and orders one warm-up task. */
  static async start (init: ProcessFederationInit): Promise<ProcessFederation> {
    assert(init.nodesPerOrg >= 1)
    const orgs = init.orgs ?? ORGS_DEFAULT
    const root = await mkdtemp(join(tmpdir(), 'fedmesh-federation-'))
    const genesis = await foundFederation(orgs, (org) => dataDir(root, org, 0), init.pbft ?? PBFT_PARAMS_DEFAULT)
    for (const org of orgs) {
      for (let i = 0; i < init.nodesPerOrg; i++) {
        await mkdir(dataDir(root, org, i), { recursive: true })
        await writeGenesis(dataDir(root, org, i), genesis)
      }
    }
    const federation = new ProcessFederation(root, genesis, orgs, [], init)
    try {
      const first = await federation.#spawn(dataDir(root, orgs[0]!, 0), ['--org', orgs[0]!])
      const founders = [first, ...await Promise.all(orgs.slice(1).map(async (org) => await federation.#spawn(dataDir(root, org, 0), ['--org', org, '--bootstrap', first.address])))]
      const members = await Promise.all(founders.map(async (founder, o) => {
        const joined: CliNode[] = []
        // One at a time per org: each join is a Raft membership change through the org's leader.
        for (let i = 1; i < init.nodesPerOrg; i++) {
          const token = await inviteToken(founder.dataDir, founder.runtime.multiaddrs, Date.now(), new Uint8Array(randomBytes(16)))
          joined.push(await federation.#spawn(dataDir(root, orgs[o]!, i), ['--join', token, '--bootstrap', first.address]))
        }
        return [founder, ...joined]
      }))
      federation.nodes.push(...members.flat())
      await federation.waitReady()
      // PBFT messages travel by gossip: a replica outside the topic mesh misses them for good (it
      // catches up only at a stable checkpoint or a view change), so the first task waits for the mesh.
      await waitFor('every node to see every other alive', async () => (await Promise.all(federation.nodes.map(async (n) => await n.members())))
        .every((ms) => ms.filter((m) => m.status === 'alive').length >= federation.nodes.length), READY_TIMEOUT_MS, 200)
      await federation.propose(first, { title: 'warm-up', capability: 'warm-up' })
      await waitFor('every node to apply the warm-up task', async () => (await Promise.all(federation.nodes.map(federatedTasksOf))).every((ts) => ts.length > 0), READY_TIMEOUT_MS, 200)
      return federation
    } catch (err) {
      await federation.stop()
      throw err
    }
  }

  orgOf (node: CliNode): string {
    return node.runtime.org
  }

  nodesOf (org: string): CliNode[] {
    return this.nodes.filter((n) => this.orgOf(n) === org)
  }

  running (): CliNode[] {
    return this.nodes.filter(isRunning)
  }

  /** Every org's nodes agree on one Raft group of all of them, and one of them hosts an active replica. */
  async waitReady (timeoutMs = READY_TIMEOUT_MS): Promise<void> {
    await waitFor('every org to form its Raft group and host its PBFT replica', async () => {
      const statuses = await Promise.all(this.running().map(statusOf))
      return this.orgs.every((org) => {
        const mine = statuses.filter((s) => s.org === org)
        const voters = this.nodesOf(org).length
        return mine.every((s) => s.raft.voters.length === voters) &&
          mine.some((s) => s.raft.role === 'leader' && s.federation?.hosting === true && s.federation.pbft?.active === true)
      })
    }, timeoutMs, 200)
  }

  /** The org of the current PBFT primary and the node hosting its replica (that org's Raft leader). */
  async primary (): Promise<{ org: string, host: CliNode, status: FederationStatus }> {
    return await waitFor('a node hosting the primary\'s replica', async () => {
      const running = this.running()
      const statuses = await Promise.all(running.map(statusOf))
      const view = statuses.find((s) => s.federation?.pbft !== undefined)?.federation?.pbft
      if (view === undefined) return undefined
      const org = this.genesis.orgs.find((o) => o.root === view.primary)?.name
      const i = statuses.findIndex((s) => s.org === org && s.raft.role === 'leader' && s.federation?.hosting === true)
      return org !== undefined && i >= 0 ? { org, host: running[i]!, status: statuses[i]!.federation! } : undefined
    }, 10_000, 100)
  }

  /** One line per org: its Raft leader and term, and its replica's view and progress (for failure messages). */
  async summary (): Promise<string> {
    const statuses = await Promise.all(this.running().map(async (n) => await statusOf(n).catch(() => undefined)))
    return this.orgs.map((org) => {
      const mine = statuses.filter((s) => s?.org === org)
      const host = mine.find((s) => s?.federation?.hosting === true)
      const pbft = host?.federation?.pbft
      return `${org}: ${mine.length}/${this.nodesOf(org).length} answering, raft terms ${mine.map((s) => s!.raft.term).join('/')}, ` +
        (pbft === undefined ? 'no replica hosted' : `replica on ${host!.key.slice(0, 8)}: view ${pbft.view}${pbft.active ? '' : ' (changing)'}, executed ${pbft.lastExecuted}, pending ${pbft.pendingRequests}, view changes ${pbft.viewChanges}`)
    }).join('\n')
  }

  /** POST /v1/federation/tasks: resolves once f+1 orgs applied the task; throws on any other answer. */
  async propose (node: CliNode, task: NewFederatedTask, options: { timeoutMs?: number } = {}): Promise<FederationReceipt> {
    const res = await request(`${node.runtime.api!}/v1/federation/tasks`, {
      method: 'POST',
      dispatcher: this.#agent,
      headers: { authorization: `Bearer ${node.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ payload: null, ...task }),
      ...(options.timeoutMs !== undefined ? { signal: AbortSignal.timeout(options.timeoutMs) } : {})
    })
    const body = await res.body.text()
    if (res.statusCode !== 200) throw new Error(`${this.orgOf(node)} answered ${res.statusCode}: ${body.slice(0, 200)}`)
    return JSON.parse(body) as FederationReceipt
  }

  /** Starts a stopped node again from its data dir (same org, same genesis), in its old slot. */
  async restart (node: CliNode): Promise<CliNode> {
    const slot = this.nodes.indexOf(node)
    assert(slot >= 0 && !isRunning(node), 'restart a stopped node of this federation')
    const peer = this.running()[0]!
    const again = await this.#spawn(node.dataDir, ['--bootstrap', peer.address])
    this.nodes[slot] = again
    return again
  }

  async stop (): Promise<void> {
    await this.#agent.close()
    await Promise.all(this.#spawned.filter(isRunning).map(async (n) => await n.kill('SIGKILL')))
    await rm(this.root, { recursive: true, force: true })
  }

  async #spawn (dir: string, args: string[]): Promise<CliNode> {
    const node = await CliNode.start(dir, [...this.#args, ...args], { startTimeoutMs: START_TIMEOUT_MS })
    this.#spawned.push(node)
    return node
  }
}

function dataDir (root: string, org: string, i: number): string {
  return join(root, `${org}-${i}`)
}

export function isRunning (node: CliNode): boolean {
  return node.child.exitCode === null && node.child.signalCode === null
}

export async function statusOf (node: CliNode): Promise<NodeStatus> {
  return await node.get<NodeStatus>('/v1/status')
}

export async function federationOf (node: CliNode): Promise<FederationStatus> {
  return await node.get<FederationStatus>('/v1/federation')
}

/** This node's copy of its org's board, every page. */
export async function boardOf (node: CliNode): Promise<Task[]> {
  const out: Task[] = []
  while (out.length < BOARD_TASKS_MAX) {
    const page = await node.get<Task[]>(`/v1/tasks?limit=${LIST_PAGE}&after=${out.at(-1)?.createdIndex ?? 0}`)
    out.push(...page)
    if (page.length < LIST_PAGE) break
  }
  return out
}

/** The cross-org tasks on this node's board, in board order. */
export async function federatedTasksOf (node: CliNode): Promise<FederatedTask[]> {
  return (await boardOf(node)).filter((t): t is FederatedTask => typeof t.payload === 'object' && t.payload !== null && 'federation' in t.payload)
}

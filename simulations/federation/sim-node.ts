import type { NodeIdentity, Signer } from '../../base/ed25519.js'
import type { Logger } from '../../base/log.js'
import type { Sanitizer } from '../../sanitize/index.js'
import { Federation, type FederationInit } from '../../node/federation/federation.js'
import type { FederationConfig } from '../../node/federation/config.js'
import { type Genesis, genesisId } from '../../node/federation/genesis.js'
import { AuditLog } from '../../node/gate/audit.js'
import { TaskService, type RaftOptions } from '../../node/org/task-service.js'
import type { SimNetwork } from '../world/network.js'
import type { Prng } from '../world/prng.js'
import type { SimClock, SimScheduler } from '../world/scheduler.js'
import { SimStorage } from '../world/sim-storage.js'
import { type SimPacket, type SimTopics, SimTransport } from '../world/sim-transport.js'

// One fedmesh node of a simulated federation, made of the production parts a FedmeshNode composes
// for the org and the federation: the audit log, the org's task service (the Raft driver and the
// org state machine) and the Federation (PBFT replica hosting with the promise log, catch-up, the
// client side) — over the simulated clock, network and disk instead of the system's. kill -9 halts
// its clock and unplugs it; a restart builds every part again from what its disk kept.

export interface SimOrg {
  name: string
  root: NodeIdentity
  nodes: SimFedNode[]
  /**
   * How its nodes join the federation: as a genesis member, or (an org founded mid-run) from the
   * epoch file a member exported once the admission vote passed; undefined while it is outside.
   */
  federation: 'genesis' | { config: FederationConfig, epochCore?: Uint8Array } | undefined
}

export interface SimWorld {
  scheduler: SimScheduler
  net: SimNetwork<SimPacket>
  topics: SimTopics
  genesis: Genesis
  sanitizer: Sanitizer
  diskMs: readonly [number, number]
  raft: RaftOptions
  federation: Pick<FederationInit, 'tickMs' | 'anchorIntervalMs'>
  /** Each node's logger (into the run's trace, or silent). */
  loggerOf: (node: string) => Logger
}

export class SimFedNode {
  readonly name: string
  readonly key: string
  clock: SimClock
  transport: SimTransport
  storage: SimStorage
  tasks: TaskService | undefined
  federation: Federation | undefined
  audit: AuditLog | undefined
  up = false
  incarnation = 0
  /** Set on an honest node whose parts failed to start: the run reports it. */
  bootFailure: Error | undefined
  readonly #signer: Signer

  constructor (
    readonly world: SimWorld,
    readonly org: SimOrg,
    readonly index: number,
    readonly identity: NodeIdentity,
    readonly certificate: Uint8Array,
    readonly prng: Prng,
    /** Sees (and may rewrite or drop) every packet the node sends: checkers and Byzantine orgs. */
    readonly outbound?: (to: string, packet: SimPacket) => SimPacket[]
  ) {
    this.name = `${org.name}/${index}`
    this.key = identity.publicKeyHex
    this.clock = world.scheduler.clock()
    this.storage = new SimStorage(this.clock, prng, world.diskMs)
    this.transport = this.#plug(this.clock)
    // Signs synchronously (no signAsync): libuv's thread pool would make the run depend on real time.
    this.#signer = { publicKey: identity.publicKey, sign: (m: Uint8Array) => identity.sign(m) }
  }

  /** Starts every part on the current clock, transport and disk; resolves once all run. */
  async boot (): Promise<void> {
    this.up = true
    this.incarnation++
    const { clock, transport, storage, org, world } = this
    const logger = world.loggerOf(this.name)
    try {
      const audit = await AuditLog.open({ storage, signer: this.#signer, clock })
      this.audit = audit
      const tasks = await TaskService.start({
        org: org.name, selfKey: this.key, founder: this.index === 0, storage, transport, clock, rng: this.prng, logger,
        orgMembers: () => org.nodes.filter((n) => n !== this && n.up).map((n) => ({ key: n.key, incarnation: 0 })), incarnationOf: () => undefined, options: world.raft
      })
      if (!this.up || this.clock !== clock) return
      this.tasks = tasks
      this.#joinFederation(tasks, audit, logger)
    } catch (err) {
      if (this.up && this.clock === clock) this.bootFailure = err as Error
    }
  }

  /** An admitted org's node that is up joins the federation from its org's epoch file (`fedmesh federation join epoch.json`). */
  joinFederation (): void {
    if (this.up && this.tasks !== undefined && this.audit !== undefined && this.federation === undefined) this.#joinFederation(this.tasks, this.audit, this.world.loggerOf(this.name))
  }

  #joinFederation (tasks: TaskService, audit: AuditLog, logger: Logger): void {
    const { org, world } = this
    if (org.federation === undefined) return
    const federationId = genesisId(world.genesis)
    const federation = new Federation({
      genesis: world.genesis, ...(org.federation !== 'genesis' ? org.federation : {}),
      signer: this.#signer, certificate: this.certificate, org: org.name, orgRoot: org.root.publicKeyHex,
      transport: this.transport, clock: this.clock, rng: this.prng, logger, sanitizer: world.sanitizer,
      isLeader: () => tasks.raftStatus().role === 'leader',
      orgLeader: () => tasks.raftStatus().leader ?? undefined,
      commitBatch: async (batch) => await tasks.commitFederationBatch(batch),
      installState: async (install) => await tasks.installFederationState(install),
      state: () => tasks.federationState(federationId),
      commitPromises: async (instance, record, requestId) => await tasks.commitPbftPromises(instance, record, requestId),
      loadPromises: async (instance) => await tasks.pbftPromises(instance),
      audit: async (input) => await audit.append(input),
      auditHead: () => audit.head,
      ...world.federation
    })
    federation.start()
    this.federation = federation
  }

  /** kill -9: the process is gone mid-whatever; its disk keeps what was synced (and a torn tail). */
  crash (): void {
    this.up = false
    this.clock.halt()
    this.transport.close()
    this.tasks = undefined
    this.federation = undefined
    this.audit = undefined
  }

  /** A new process on the same disk: new clock, new connections, every part rebuilt from storage. */
  async restart (): Promise<{ torn: number, lost: number }> {
    const clock = this.world.scheduler.clock(this.clock.skewMs)
    const { storage, torn, lost } = this.storage.crash(clock)
    this.clock = clock
    this.storage = storage
    this.transport = this.#plug(clock)
    await this.boot()
    return { torn, lost }
  }

  #plug (clock: SimClock): SimTransport {
    const transport = new SimTransport(this.world.net, this.world.topics, clock, this.identity.publicKey)
    transport.outbound = this.outbound
    return transport
  }
}

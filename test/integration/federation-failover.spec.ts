import '../../node/runtime/polyfills.js'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { genesisId, writeGenesis } from '../../node/federation/genesis.js'
import { silentLogger } from '../../base/log.js'
import { FedmeshNode, type FedmeshNodeInit } from '../../node/node.js'
import { inviteToken } from '../../node/org/org-identity.js'
import type { Task } from '../../node/org/task-board.js'
import { waitFor } from '../helpers/cli-node.js'
import { foundFederation, isFederated } from '../helpers/federation-genesis.js'

// 4 orgs, bravo with 3 nodes: bravo's PBFT promises go through its Raft log, so when its Raft leader
// (the replica's host) stops, the next leader resumes the replica where the org left it and the
// federation keeps ordering tasks into every org's board, each once.
describe('federation: the org replica survives its Raft leader (real libp2p on 127.0.0.1)', function () {
  this.timeout(30_000)
  const ORGS = ['alpha', 'bravo', 'charlie', 'delta']
  const RAFT = { tickMs: 20, electionTicks: 10 }
  let root: string
  let federation: string
  const running: FedmeshNode[] = []

  const start = async (name: string, options: Partial<FedmeshNodeInit>): Promise<FedmeshNode> => {
    const node = await FedmeshNode.start({ dataDir: join(root, name), listen: ['/ip4/127.0.0.1/tcp/0'], api: null, heartbeatMs: 200, logger: silentLogger, raft: RAFT, ...options })
    running.push(node)
    return node
  }

  type Placed = Task & { payload: { federation: { seq: number, position: number } } }
  const federationTasks = async (node: FedmeshNode): Promise<Placed[]> =>
    (await node.tasks.list({ limit: 1000 })).filter((t): t is Placed => isFederated(t))
  const hosting = (nodes: FedmeshNode[]): FedmeshNode | undefined => nodes.find((n) => n.status().federation?.hosting === true && n.tasks.raftStatus().role === 'leader')

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'fedmesh-failover-'))
    const genesis = await foundFederation(ORGS, (name) => join(root, name), { checkpointInterval: 2, viewChangeTimeoutMs: 2000 })
    federation = genesisId(genesis)
    for (const name of [...ORGS, 'bravo-2', 'bravo-3']) {
      await mkdir(join(root, name), { recursive: true })
      await writeGenesis(join(root, name), genesis)
    }
    const alpha = await start('alpha', { org: 'alpha' })
    for (const name of ORGS.slice(1)) await start(name, { org: name, bootstrap: alpha.multiaddrs() })
    const bravo = running[1]!
    for (const name of ['bravo-2', 'bravo-3']) {
      await start(name, { join: await inviteToken(join(root, 'bravo'), bravo.multiaddrs(), Date.now(), new Uint8Array(randomBytes(16))), bootstrap: alpha.multiaddrs() })
    }
    const bravos = running.filter((n) => n.org === 'bravo')
    await waitFor('3 bravo voters', () => bravos.every((n) => n.status().raft.voters.length === 3), 10_000, 20)
    await waitFor('every org to host its replica', () => ORGS.every((org) => hosting(running.filter((n) => n.org === org)) !== undefined), 10_000)
  })

  after(async () => {
    for (const node of running) await node.stop()
    await rm(root, { recursive: true, force: true })
  })

  it('a new bravo leader resumes the replica from the replicated promises; later tasks land once everywhere', async () => {
    const [alpha, , charlie] = running
    const receipts = [
      await alpha!.propose({ title: 'first', capability: 'ops.rotate' }, { scope: 'federation' }),
      await charlie!.propose({ title: 'second', capability: 'ops.rotate' }, { scope: 'federation' })
    ]
    const bravos = running.filter((n) => n.org === 'bravo')
    const oldHost = hosting(bravos)!
    await waitFor('bravo to execute both', () => oldHost.status().federation!.pbft!.lastExecuted === receipts[1]!.seq, 10_000)
    await new Promise((resolve) => setTimeout(resolve, 300))   // the checkpoint of seq 2 settles
    const before = oldHost.status().federation!.pbft!

    // Every bravo member holds the promises, the stable checkpoint and the executed mark.
    const followers = bravos.filter((n) => n !== oldHost)
    for (const follower of followers) {
      const log = await waitFor('a follower to hold the executed mark', async () => {
        const state = await follower.tasks.pbftPromises(federation)
        return state.restore?.executedSeq === before.lastExecuted ? state.restore : undefined
      }, 5_000)
      assert.ok(log.promises.length > 0)
      assert.equal(log.stable?.seq, 2, 'the stable checkpoint of seq 2 is in the log')
      assert.ok(log.promises.every((m) => !('seq' in m.body) || m.body.seq > (log.stable?.seq ?? 0) || m.body.type === 'Checkpoint'), 'promises below the stable checkpoint are dropped')
    }

    await oldHost.stop()
    running.splice(running.indexOf(oldHost), 1)
    const newHost = await waitFor('another bravo node to host the replica', () => hosting(followers), 10_000)
    const after = newHost.status().federation!.pbft!
    assert.equal(after.view, before.view)
    assert.equal(after.lastExecuted, before.lastExecuted)
    assert.equal(after.lowWatermark, before.lowWatermark)

    const third = await running.find((n) => n.org === 'delta')!.propose({ title: 'third', capability: 'ops.rotate' }, { scope: 'federation' })
    assert.ok(third.accepted && third.seq > receipts[1]!.seq)
    const expected = [...receipts, third].map((r) => `${r.seq}.${r.position}`)
    for (const node of running) {
      const tasks = await waitFor(`${node.org} to apply the third task`, async () => {
        const found = await federationTasks(node)
        return found.length >= 3 ? found : undefined
      }, 10_000)
      assert.deepEqual(tasks.map((t) => `${t.payload.federation.seq}.${t.payload.federation.position}`), expected, `${node.org}: each task once, in order`)
    }
    assert.equal(newHost.status().federation!.pbft!.lastExecuted, third.seq)
  })
})

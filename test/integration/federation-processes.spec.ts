import '../../node/runtime/polyfills.js'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import type { FederationReceipt } from '../../node/federation/federation.js'
import { CLI, waitFor } from '../helpers/cli-node.js'
import { ProcessFederation, federatedTasksOf, type FederatedTask } from '../helpers/federation-processes.js'

// Federations of real `fedmesh start` processes on 127.0.0.1 (LevelDB, libp2p, the admin API):
// cross-org tasks ordered by PBFT land in every org's board once, at one (seq, position), including
// across a SIGKILL of the Raft leader that hosts the primary's replica.

const run = promisify(execFile)
// Elections after 1-2 s of silence: a dozen processes on a busy box stall for hundreds of ms, and
// every needless Raft election moves an org's replica (see the kill below for a deliberate one).
const TIMING = ['--heartbeat-ms', '1000', '--raft-tick-ms', '50', '--raft-election-ticks', '20']
const PBFT = { checkpointInterval: 8, viewChangeTimeoutMs: 2000 }

/** Each title's placements on one board: title → "seq.position" list. */
function placements (tasks: FederatedTask[]): Map<string, string[]> {
  const byTitle = new Map<string, string[]>()
  for (const t of tasks) byTitle.set(t.title, [...(byTitle.get(t.title) ?? []), `${t.payload.federation.seq}.${t.payload.federation.position}`])
  return byTitle
}

describe('federation of 4 orgs × 1 fedmesh process', function () {
  this.timeout(60_000)
  let federation: ProcessFederation

  before(async () => { federation = await ProcessFederation.start({ nodesPerOrg: 1, args: TIMING, pbft: PBFT }) })
  after(async () => { await federation?.stop() })

  it('a task proposed with `fedmesh task propose --federation` lands once in all four boards at one (seq, position)', async () => {
    const proposer = federation.nodesOf('charlie')[0]!
    const { stdout } = await run(process.execPath, [CLI, 'task', 'propose', '--federation', '--title', 'rotate the keys', '--capability', 'ops.rotate',
      '--payload', '{"n":1}', '--json', '--data-dir', proposer.dataDir], { timeout: 35_000 })
    const receipt = JSON.parse(stdout) as FederationReceipt
    assert.equal(receipt.accepted, true)
    for (const node of federation.nodes) {
      const [task, ...more] = await waitFor(`${node.runtime.org} to apply the task`, async () => {
        const found = (await federatedTasksOf(node)).filter((t) => t.title === 'rotate the keys')
        return found.length > 0 ? found : undefined
      }, 10_000)
      assert.equal(more.length, 0, `${node.runtime.org} applied it once`)
      assert.deepEqual([task!.payload.federation.seq, task!.payload.federation.position], [receipt.seq, receipt.position])
      assert.deepEqual([task!.capability, task!.payload.federation.org, task!.payload.payload], ['ops.rotate', 'charlie', { n: 1 }])
    }
  })
})

describe('federation of 4 orgs × 3 fedmesh processes: the Raft leader hosting the primary is SIGKILLed mid-stream', function () {
  this.timeout(150_000)
  const WORKERS = 4
  const TASKS_MAX = 200
  const STREAM_MS_MAX = 45_000
  // Each PBFT step of an org's replica is a Raft commit in its org: a few tasks a second on a busy box.
  const ACKED_BEFORE_KILL = 8
  const ACKED_AFTER_KILL = 5
  const PROPOSE_TIMEOUT_MS = 15_000
  let federation: ProcessFederation

  before(async () => { federation = await ProcessFederation.start({ nodesPerOrg: 3, args: TIMING, pbft: PBFT }) })
  after(async () => { await federation?.stop() })

  it('the stream goes on, and every acknowledged task is on every node of every org exactly once, the restarted node too', async () => {
    const { org: primaryOrg, host } = await federation.primary()
    // Load over the nodes of the three other orgs: none of them is killed.
    const targets = federation.nodes.filter((n) => n.runtime.org !== primaryOrg)
    const acked = new Map<string, FederationReceipt & { sentMs: number }>()
    const failures: string[] = []
    let sent = 0
    let killedMs = Infinity
    const startedMs = Date.now()
    const worker = async (w: number): Promise<void> => {
      for (let i = 0; sent < TASKS_MAX && Date.now() - startedMs < STREAM_MS_MAX; i++) {
        sent++
        // A fresh title per attempt: a timed-out proposal may still be ordered, a retry under its title would be a second task.
        const title = `w${w}-${i}`
        const sentMs = Date.now()
        try {
          const receipt = await federation.propose(targets[(w * 7 + i) % targets.length]!, { title, capability: 'stream', payload: { w, i } }, { timeoutMs: PROPOSE_TIMEOUT_MS })
          assert.equal(receipt.accepted, true)
          acked.set(title, { ...receipt, sentMs })
        } catch (err) {
          failures.push(`${title}: ${(err as Error).message}`)
          await new Promise((resolve) => setTimeout(resolve, 100))
        }
      }
    }
    const stream = Promise.all(Array.from({ length: WORKERS }, async (_, w) => await worker(w)))
    try {
      await waitFor(`${ACKED_BEFORE_KILL} acknowledged tasks`, () => acked.size >= ACKED_BEFORE_KILL, STREAM_MS_MAX, 20)
      killedMs = Date.now()
      await host.kill('SIGKILL')
      await waitFor(`${ACKED_AFTER_KILL} tasks sent after the kill to be acknowledged`, () => [...acked.values()].filter((r) => r.sentMs > killedMs).length >= ACKED_AFTER_KILL, STREAM_MS_MAX, 20)
    } catch (err) {
      throw new Error(`${(err as Error).message} (${acked.size} of ${sent} acknowledged; ${failures.length} failed${failures.length > 0 ? `, last: ${failures.at(-1)!}` : ''})\n${await federation.summary()}`)
    } finally {
      await stream
    }
    const restarted = await federation.restart(host)
    const afterKill = [...acked.values()].filter((r) => r.sentMs > killedMs).length
    assert.ok(afterKill >= ACKED_AFTER_KILL, `${afterKill} tasks sent after the kill acknowledged`)

    // Every node, the restarted one included, converges on one list of cross-org tasks holding every acknowledged one.
    const titles = [...acked.keys()]
    const boards = await waitFor(`every node, ${restarted.runtime.org}'s restarted one too, to hold every acknowledged task, all boards alike`, async () => {
      const all = await Promise.all(federation.nodes.map(federatedTasksOf))
      const keys = all.map((tasks) => tasks.map((t) => `${t.title}@${t.payload.federation.seq}.${t.payload.federation.position}`).join(','))
      if (keys.some((k) => k !== keys[0])) return undefined
      const present = new Set(all[0]!.map((t) => t.title))
      return titles.every((t) => present.has(t)) ? all : undefined
    }, 30_000, 250).catch(async (err: Error) => {
      // Say which boards differ: per node, how many tasks it holds and the first acknowledged one it lacks.
      const all = await Promise.all(federation.nodes.map(async (n) => await federatedTasksOf(n).catch(() => [])))
      const detail = all.map((tasks, n) => {
        const present = new Set(tasks.map((t) => t.title))
        const lacking = titles.filter((t) => !present.has(t))
        return `${federation.nodes[n]!.runtime.org} node ${n}: ${tasks.length} tasks, lacks ${lacking.length}${lacking.length > 0 ? ` (${lacking.slice(0, 3).join(', ')})` : ''}`
      }).join('\n')
      throw new Error(`${err.message}\n${await federation.summary()}\n${detail}`)
    })
    for (const [n, tasks] of boards.entries()) {
      const org = federation.nodes[n]!.runtime.org
      for (const [title, where] of placements(tasks)) assert.equal(where.length, 1, `${org} node ${n}: ${title} applied ${where.length} times (${where.join(', ')})`)
      const byTitle = placements(tasks)
      for (const [title, r] of acked) assert.deepEqual(byTitle.get(title), [`${r.seq}.${r.position}`], `${org} node ${n}: ${title} where its receipt says`)
    }
    console.log(`      ${acked.size} of ${sent} acknowledged (${afterKill} sent after the kill of ${primaryOrg}'s leader), ${failures.length} failed${failures.length > 0 ? `, e.g. ${failures[0]!}` : ''}, ${Date.now() - startedMs} ms`)
  })
})

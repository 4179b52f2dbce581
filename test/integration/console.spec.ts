import '../../node/runtime/polyfills.js'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { RaftNodeStatus } from '../../consensus/raft/driver.js'
import { silentLogger } from '../../base/log.js'
import { FedmeshNode } from '../../node/node.js'
import { writeGenesis } from '../../node/federation/genesis.js'
import { loadOrCreateToken } from '../../node/runtime/data-dir.js'
import { CLI, CliNode, waitFor } from '../helpers/cli-node.js'
import { HeadlessChromium } from '../helpers/chromium.js'
import { foundFederation } from '../helpers/federation-genesis.js'

// The web console in headless Chromium against a real 3-node org (3 fedmesh processes joined by
// invite tokens): the login form refuses a wrong token and takes the right one, then the page
// shows the 3 members alive, the Raft leader, the tasks proposed, claimed and completed, and the
// audit log verified. FEDMESH_CONSOLE_SCREENSHOT=docs/console.png also saves the page (the
// README's picture). Then a federation of 4 orgs × 1 node (in-process): the federation panel.

const run = promisify(execFile)
const TIMING = ['--heartbeat-ms', '250']

interface PageState {
  login: boolean
  loginError: string | null
  members: string[][]
  leaderKey: string | null
  voters: number
  tasks: Record<'open' | 'claimed' | 'done', string>
  audit: string
  federation: string
  pbftView: string
}

// Read in the page: what an operator sees, as text.
const READ_PAGE = `(() => {
  const text = (id) => document.getElementById(id)?.textContent ?? ''
  return {
    login: document.getElementById('login') !== null,
    loginError: document.getElementById('login-error')?.textContent ?? null,
    members: [...document.querySelectorAll('#members-table tbody tr')].map((tr) => [...tr.children].map((td) => td.textContent)),
    leaderKey: document.querySelector('#raft-leader .key')?.getAttribute('title') ?? null,
    voters: document.querySelectorAll('#raft-voters .key').length,
    tasks: { open: text('tasks-open'), claimed: text('tasks-claimed'), done: text('tasks-done') },
    audit: text('audit-status'),
    federation: text('federation-summary'),
    pbftView: text('pbft-view')
  }
})()`

const readPage = async (browser: HeadlessChromium): Promise<PageState> => await browser.evaluate<PageState>(READ_PAGE)

async function signIn (browser: HeadlessChromium, token: string): Promise<void> {
  await waitFor('the login form', async () => await browser.evaluate<boolean>('document.getElementById("token") !== null'), 10_000)
  await browser.evaluate(`(() => { document.getElementById('token').value = ${JSON.stringify(token)}; document.getElementById('login').requestSubmit() })()`)
}

describe('the web console in headless Chromium, against a 3-node org', function () {
  this.timeout(60_000)
  let root: string
  const nodes: CliNode[] = []
  let browser: HeadlessChromium | undefined

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'fedmesh-console-'))
    nodes.push(await CliNode.start(join(root, 'n0'), [...TIMING, '--org', 'acme']))
    const invite = async (): Promise<string> => (await run(process.execPath, [CLI, 'invite', '--data-dir', nodes[0]!.dataDir], { timeout: 10_000 })).stdout.trim()
    const tokens = [await invite(), await invite()]
    nodes.push(...await Promise.all(tokens.map(async (token, i) => await CliNode.start(join(root, `n${i + 1}`), [...TIMING, '--join', token]))))
  })

  after(async () => {
    await browser?.close()
    await Promise.all(nodes.map(async (n) => { if (n.child.exitCode === null && n.child.signalCode === null) await n.kill('SIGKILL') }))
    await rm(root, { recursive: true, force: true })
  })

  it('signs in with the admin token and shows the members, the Raft leader, the task board and the verified audit log', async () => {
    const keys = nodes.map((n) => n.key).sort()
    const raft = await waitFor('3 voters with a leader', async () => {
      const status = (await nodes[1]!.get<{ raft: RaftNodeStatus }>('/v1/status')).raft
      return JSON.stringify(status.voters) === JSON.stringify(keys) && status.leader !== null ? status : undefined
    }, 20_000)
    const post = async (path: string, body: unknown): Promise<{ taskId: string }> => {
      const res = await fetch(nodes[1]!.runtime.api + path, {
        method: 'POST', headers: { authorization: `Bearer ${nodes[1]!.token}`, 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(5000)
      })
      assert.equal(res.status, 200, await res.clone().text())
      return await res.json() as { taskId: string }
    }
    await post('/v1/tasks', { title: 'rotate the backups', capability: 'ops' })
    const claimed = await post('/v1/tasks', { title: 'reindex the archive', capability: 'search' })
    const done = await post('/v1/tasks', { title: 'summarize the incident', capability: 'summarize' })
    await post(`/v1/tasks/${claimed.taskId}/claim`, {})
    await post(`/v1/tasks/${done.taskId}/claim`, {})
    await post(`/v1/tasks/${done.taskId}/complete`, { result: { ok: true } })

    browser = await HeadlessChromium.launch({ width: 1400, height: 1000 })
    const page = browser
    const read = async (): Promise<PageState> => await readPage(page)
    await page.navigate(`${nodes[0]!.runtime.api}/console`)
    await signIn(page, 'not-the-token')
    await waitFor('the wrong token to be refused', async () => (await read()).loginError?.includes('refused'), 10_000)

    await signIn(page, nodes[0]!.token)
    const state = await waitFor('the console to show 3 alive members, the tasks and a verified audit log', async () => {
      const s = await read()
      const shown = s.members.length === 3 && s.members.every((row) => row[2] === 'alive') && s.tasks.done.includes('summarize the incident') && s.audit.includes('verified')
      return shown ? s : undefined
    }, 20_000)
    assert.equal(state.login, false)
    assert.equal(state.leaderKey, raft.leader)
    assert.equal(state.voters, 3)
    assert.deepEqual(state.members.map((row) => row[1]), ['acme', 'acme', 'acme'])
    assert.equal(state.members.filter((row) => row[3] === 'leader').length, 1, 'one member is shown as the leader')
    assert.ok(state.members.some((row) => row[0]?.includes('this node')))
    assert.match(state.tasks.open, /^open 1.*rotate the backups/)
    assert.match(state.tasks.claimed, /^claimed 1.*reindex the archive/)
    assert.match(state.tasks.done, /^done 1.*summarize the incident/)
    assert.match(state.audit, /verified: entries 1\.\.\d+ chain and are signed/)
    assert.match(state.federation, /^Not federated/)

    // The token lives in the tab's sessionStorage, not in the page's address.
    assert.equal(await page.evaluate<string | null>('sessionStorage.getItem("fedmesh.apiToken")'), nodes[0]!.token)
    assert.equal(await page.evaluate<string>('location.href'), `${nodes[0]!.runtime.api}/console`)

    const png = await page.screenshot()
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
    if (process.env.FEDMESH_CONSOLE_SCREENSHOT !== undefined) await writeFile(process.env.FEDMESH_CONSOLE_SCREENSHOT, png)
  })
})

describe('the web console of a federated node (4 orgs × 1 node)', function () {
  this.timeout(40_000)
  const ORGS = ['alpha', 'bravo', 'charlie', 'delta']
  let root: string
  const nodes: FedmeshNode[] = []
  let browser: HeadlessChromium | undefined

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'fedmesh-console-federation-'))
    const genesis = await foundFederation(ORGS, (name) => join(root, name), { checkpointInterval: 4, viewChangeTimeoutMs: 2000 })
    for (const name of ORGS) {
      await writeGenesis(join(root, name), genesis)
      nodes.push(await FedmeshNode.start({
        dataDir: join(root, name), org: name, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: nodes[0]?.multiaddrs() ?? [],
        api: name === 'alpha' ? { host: '127.0.0.1', port: 0 } : null, heartbeatMs: 200, logger: silentLogger
      }))
    }
    await waitFor('every node to host its org\'s replica', () => nodes.every((n) => n.status().federation?.hosting === true), 15_000)
  })

  after(async () => {
    await browser?.close()
    for (const node of nodes) await node.stop()
    await rm(root, { recursive: true, force: true })
  })

  it('shows the member orgs, the epoch, the PBFT view and the federated tasks', async () => {
    await nodes[1]!.propose({ title: 'rotate certificates', capability: 'ops' }, { scope: 'federation' })
    await waitFor('alpha to apply the federated task', async () => (await nodes[0]!.tasks.list()).some((t) => t.title === 'rotate certificates'), 10_000)
    browser = await HeadlessChromium.launch({ width: 1400, height: 1000 })
    await browser.navigate(`${nodes[0]!.apiUrl!}/console`)
    await signIn(browser, await loadOrCreateToken(join(root, 'alpha')))
    const page = browser
    const state = await waitFor('the federation panel', async () => {
      const s = await readPage(page)
      return s.pbftView !== '' && s.tasks.open.includes('rotate certificates') ? s : undefined
    }, 15_000)
    assert.match(state.federation, /^epoch 0, 4 member orgs; this node hosts the org's replica/)
    assert.match(state.pbftView, /^0, primary (alpha|bravo|charlie|delta)$/)
    assert.match(state.tasks.open, /^open 1org 0, federated 1rotate certificates/)
    assert.deepEqual(state.members.map((row) => row[1]).sort(), ORGS)
    assert.equal(state.members.filter((row) => row[3] === 'other org').length, 3)
  })
})

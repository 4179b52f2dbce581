import '../node/runtime/polyfills.js'
import assert from 'node:assert/strict'
import { execFile, execFileSync } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { parse } from 'yaml'
import type { FederationReceipt } from '../node/federation/federation.js'
import { CLI, CliNode, waitFor } from './helpers/cli-node.js'
import { federatedTasksOf, statusOf } from './helpers/federation-processes.js'

// The operator's artefacts in deploy/ (README: Run it under systemd, Run it with docker compose):
// the systemd unit verifies and stays hardened, the compose file runs federation-up then 4 org nodes,
// and federation-up.sh, the sequence the compose file runs, federates 4 orgs of real processes.

const run = promisify(execFile)
const DEPLOY = fileURLToPath(new URL('../deploy/', import.meta.url))
const ORGS = ['alpha', 'bravo', 'charlie', 'delta']
/** systemd-analyze security's exposure scale is 0..100 (printed as 0.0..10.0): at most 2.0. */
const EXPOSURE_MAX = 20

function hasCommand (name: string): boolean {
  try {
    execFileSync(name, ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

describe('deploy/', function () {
  this.timeout(60_000)

  it('fedmesh.service passes systemd-analyze verify, with an exposure of at most 2.0', async () => {
    assert.ok(hasCommand('systemd-analyze'), 'systemd-analyze is missing: apt-get install -y systemd (.ci/run installs it)')
    const unit = join(DEPLOY, 'fedmesh.service')
    // verify exits 0 on unknown keys (it only warns), so its output must be empty too.
    const verify = await run('systemd-analyze', ['verify', unit])
    assert.equal(verify.stdout + verify.stderr, '')
    await run('systemd-analyze', ['security', '--offline=yes', `--threshold=${EXPOSURE_MAX}`, unit])
  })

  it('compose.yaml runs federation-up once, then one node of the image per org on its own volume', async () => {
    const compose = parse(await readFile(join(DEPLOY, 'compose.yaml'), 'utf8'), { merge: true }) as {
      services: Record<string, { image: string, build?: { dockerfile: string }, command: string | string[], depends_on?: Record<string, { condition: string }>, volumes: string[] }>
      volumes: Record<string, unknown>
    }
    const { 'federation-up': setup, ...nodes } = compose.services
    assert.ok(setup !== undefined, 'a federation-up service')
    assert.equal(setup.build?.dockerfile, 'deploy/Dockerfile')
    assert.deepEqual(Object.keys(nodes).sort(), ORGS)
    const script = Array.isArray(setup.command) ? setup.command.join(' ') : setup.command
    for (const org of ORGS) {
      const node = nodes[org]!
      assert.equal(node.image, setup.image, `${org} runs the image federation-up builds`)
      assert.deepEqual(node.command, ['start', '--data-dir', '/var/lib/fedmesh'])
      assert.deepEqual(node.depends_on, { 'federation-up': { condition: 'service_completed_successfully' } })
      assert.deepEqual(node.volumes, [`${org}:/var/lib/fedmesh`])
      assert.ok(setup.volumes.includes(`${org}:/federation/${org}`), `federation-up mounts ${org}'s volume`)
      assert.match(script, new RegExp(` ${org}=/dns4/${org}/tcp/7400( |$)`), `federation-up names ${org} at its service address`)
    }
    assert.deepEqual(Object.keys(compose.volumes).sort(), ORGS)
    const dockerfile = await readFile(join(DEPLOY, 'Dockerfile'), 'utf8')
    assert.match(dockerfile, /^USER fedmesh$/m)
    assert.match(dockerfile, /^COPY deploy\/federation-up\.sh /m)
  })

  it('federation-up.sh federates 4 orgs of fedmesh processes: a task proposed on one lands on all four boards', async () => {
    const root = await mkdtemp(join(tmpdir(), 'fedmesh-deploy-'))
    const nodes: CliNode[] = []
    try {
      const addresses = await Promise.all(ORGS.map(async () => `/ip4/127.0.0.1/tcp/${await freePort()}`))
      await run(join(DEPLOY, 'federation-up.sh'), [root, ...ORGS.map((org, i) => `${org}=${addresses[i]!}`)], {
        env: { ...process.env, FEDMESH_CLI: `${process.execPath} ${CLI}` }, timeout: 40_000
      })
      // As compose does: each node started with its data dir only (the CLI's --listen replaces the
      // config's, so it is given again); config.json holds the others' addresses.
      nodes.push(...await Promise.all(ORGS.map(async (org, i) => await CliNode.start(join(root, org), ['--listen', addresses[i]!]))))
      await waitFor('every org to host its PBFT replica', async () => (await Promise.all(nodes.map(statusOf)))
        .every((s) => s.federation?.hosting === true && s.federation.pbft?.active === true), 20_000, 200)
      const { stdout } = await run(process.execPath, [CLI, 'task', 'propose', '--federation', '--title', 'deployed', '--capability', 'ops',
        '--json', '--data-dir', join(root, 'charlie')], { timeout: 20_000 })
      const receipt = JSON.parse(stdout) as FederationReceipt
      assert.equal(receipt.accepted, true)
      for (const node of nodes) {
        await waitFor(`${node.runtime.org} to apply the task`, async () => (await federatedTasksOf(node)).some((t) => t.title === 'deployed'), 10_000, 200)
      }
      // Run again over a federated data root, it changes nothing.
      const again = await run(join(DEPLOY, 'federation-up.sh'), [root, ...ORGS.map((org, i) => `${org}=${addresses[i]!}`)], { env: { ...process.env, FEDMESH_CLI: `${process.execPath} ${CLI}` } })
      assert.match(again.stdout, /already federated/)
    } finally {
      await Promise.all(nodes.map(async (n) => await n.kill('SIGTERM')))
      await rm(root, { recursive: true, force: true })
    }
  })
})

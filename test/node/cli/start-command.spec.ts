import '../../../node/runtime/polyfills.js'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { encodeCanonical } from '../../../base/codec.js'
import { AUDIT_HEAD_KEY } from '../../../node/gate/audit.js'
import { DB_DIR, RUNTIME_FILE } from '../../../node/runtime/data-dir.js'
import { generateIdentity, peerIdOf } from '../../../node/runtime/key-file.js'
import { LevelStorage } from '../../../node/runtime/level-storage.js'
import { CliNode, runCli } from '../../helpers/cli-node.js'

// `fedmesh start` fails fast and never half-starts (the built CLI, real processes on 127.0.0.1).
describe('fedmesh start: fail fast, never half-start', function () {
  this.timeout(60_000)
  let root: string
  const LOCAL = ['--listen', '/ip4/127.0.0.1/tcp/0', '--api', '127.0.0.1:0']
  const someoneElse = peerIdOf(generateIdentity().publicKey).toString()
  const start = async (dir: string, args: string[]): ReturnType<typeof runCli> => await runCli(['start', '--data-dir', join(root, dir), ...LOCAL, ...args])
  const files = async (dir: string): Promise<string[]> => existsSync(join(root, dir)) ? (await readdir(join(root, dir))).sort() : []

  before(async () => { root = await mkdtemp(join(tmpdir(), 'fedmesh-start-')) })
  after(async () => { await rm(root, { recursive: true, force: true }) })

  it('refuses a first start with --bootstrap but neither --org nor --join, writing nothing', async () => {
    const result = await start('no-org', ['--bootstrap', `/ip4/127.0.0.1/tcp/9/p2p/${someoneElse}`])
    assert.equal(result.code, 1)
    assert.match(result.stderr, /^fedmesh: a first start with --bootstrap founds no org by accident: pass --join TOKEN .* or --org NAME/)
    assert.equal(result.stderr.split('\n').length, 1)
    assert.deepEqual(await files('no-org'), [])
  })

  it('refuses a malformed bootstrap address or one naming no peer, writing nothing', async () => {
    for (const [address, reason] of [['127.0.0.1:7400', 'not a multiaddr'], ['/ip4/127.0.0.1/tcp/7400', 'names no peer'], ['/ip4/127.0.0.1/tcp/7400/p2p/QmNotAPeer', '\'QmNotAPeer\' is not a fedmesh peer id']]) {
      const result = await start('malformed', ['--org', 'acme', '--bootstrap', address!])
      assert.equal(result.code, 1)
      assert.ok(result.stderr.startsWith(`fedmesh: --bootstrap ${address!}: ${reason!}`), result.stderr)
      assert.deepEqual(await files('malformed'), [])
    }
  })

  it('an unreachable bootstrap is one error line after a bounded retry with progress lines; no org founded', async () => {
    const closed = await freePort()
    const result = await start('unreachable', ['--org', 'acme', '--bootstrap', `/ip4/127.0.0.1/tcp/${closed}/p2p/${someoneElse}`])
    assert.equal(result.code, 1)
    assert.match(result.stderr, /^fedmesh: cannot reach any --bootstrap address after 5 attempts \(.*ECONNREFUSED.*\); nothing was founded or joined/)
    assert.equal(result.stderr.split('\n').length, 1)
    assert.equal(result.logs.filter((l) => l.includes('bootstrap not reachable yet')).length, 4)
    assert.ok(!(await files('unreachable')).includes('org-root.key'))
    assert.ok(!(await files('unreachable')).includes('node.cert'))
  })

  it('a bootstrap naming the wrong peer id fails at once, naming the node that answered', async () => {
    const node = await CliNode.start(join(root, 'bootstrap'), ['--org', 'acme'])
    try {
      const address = node.address.replace(/\/p2p\/.*$/, `/p2p/${someoneElse}`)
      const result = await start('wrong-peer', ['--org', 'globex', '--bootstrap', address])
      assert.equal(result.code, 1)
      assert.equal(result.stderr, `fedmesh: cannot join through --bootstrap: ${address} is not the peer it names: the node there is ${node.runtime.peerId}`)
      assert.ok(!(await files('wrong-peer')).includes('org-root.key'))
    } finally {
      await node.kill('SIGTERM')
    }
  })

  it('--listen or --api on an address in use: one line naming it and how to choose another', async () => {
    const server = await listening()
    try {
      const port = (server.address() as { port: number }).port
      const p2p = await runCli(['start', '--data-dir', join(root, 'busy'), '--listen', `/ip4/127.0.0.1/tcp/${port}`, '--api', '127.0.0.1:0'])
      assert.equal(p2p.code, 1)
      assert.equal(p2p.stderr, `fedmesh: cannot listen on /ip4/127.0.0.1/tcp/${port}: the address is in use (another node?); choose another with --listen, e.g. --listen /ip4/0.0.0.0/tcp/7410 (tcp/0: any free port)`)
      const api = await runCli(['start', '--data-dir', join(root, 'busy'), '--listen', '/ip4/127.0.0.1/tcp/0', '--api', `127.0.0.1:${port}`])
      assert.equal(api.code, 1)
      assert.equal(api.stderr, `fedmesh: cannot serve the admin API on 127.0.0.1:${port}: the address is in use (another node?); choose another with --api HOST:PORT (port 0: any free port)`)
      assert.ok(!existsSync(join(root, 'busy', RUNTIME_FILE)))
    } finally {
      server.close()
    }
  })

  it('a start that fails after its API is up (an audit log it refuses to extend) stops everything, leaves no runtime.json, exits 1', async () => {
    const dir = join(root, 'refused-audit')
    await (await CliNode.start(dir, ['--org', 'acme'])).kill('SIGTERM')
    const storage = await LevelStorage.open(join(dir, DB_DIR))
    await storage.batch([{ type: 'put', key: AUDIT_HEAD_KEY, value: encodeCanonical({ seq: 99, hash: 'ab'.repeat(32) }) }])
    await storage.close()
    const result = await start('refused-audit', [])
    assert.equal(result.code, 1)
    assert.match(result.stderr, /^fedmesh: refusing to append to the audit log: head \(entry 99\) does not match/)
    assert.ok(!existsSync(join(dir, RUNTIME_FILE)))
    const status = await runCli(['status', '--data-dir', dir])
    assert.equal(status.code, 1)
    assert.match(status.stderr, /no running node/)
  })

  it('--version, and -h/--help on every command, print and exit 0', async () => {
    assert.match((await runCli(['--version'])).stdout, /^fedmesh \d+\.\d+\.\d+\n$/)
    const commands = ['init', 'invite', 'start', 'id', 'status', 'members', 'trust', 'audit', 'policy', 'sanitize', 'task', 'federation', 'simulate']
    for (const [command, flag] of [...commands.map((c) => [c, '--help']), ['start', '-h'], ['simulate', '-h']]) {
      const result = await runCli([command!, flag!])
      assert.equal(result.code, 0, `${command!} ${flag!}: ${result.stderr}`)
      assert.ok(result.stdout.startsWith('usage') && result.stdout.includes(`fedmesh ${command!}`), `${command!} ${flag!}: ${result.stdout}`)
    }
  })
})

async function listening (): Promise<Server> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return server
}

async function freePort (): Promise<number> {
  const server = await listening()
  const port = (server.address() as { port: number }).port
  await new Promise((resolve) => server.close(resolve))
  return port
}

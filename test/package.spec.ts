import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

// What a user does: install the packed tarball into an empty project and `import { FedmeshNode }
// from 'fedmesh'`. This is the only test of package.json's main/types/exports/bin/files.

const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('..', import.meta.url))

// The user's script: a single-node org in a temp data dir, one task, a clean stop.
const USER_SCRIPT = `
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FedmeshNode } from 'fedmesh'

const dataDir = mkdtempSync(join(tmpdir(), 'fedmesh-package-node-'))
const node = await FedmeshNode.start({ dataDir, api: null, listen: ['/ip4/127.0.0.1/tcp/0'] })
const receipt = await node.propose({ title: 't', capability: 'c' })
console.log(JSON.stringify(receipt))
await node.stop()
`

interface PackResult { filename: string, files: Array<{ path: string }> }

describe('the npm package', function () {
  this.timeout(120_000)
  let dir: string
  let pack: PackResult

  before(async () => {
    if (!existsSync(join(ROOT, 'dist/node/index.js'))) throw new Error('dist/ is missing: run npm run build (npm test does it first)')
    dir = await mkdtemp(join(tmpdir(), 'fedmesh-package-'))
    // --ignore-scripts: `npm pack` would run `prepare`, a second full build after pretest's.
    const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: ROOT })
    pack = (JSON.parse(stdout) as PackResult[])[0]!
  })

  after(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  it('ships the built entry points and no tests or benchmarks', () => {
    const paths = pack.files.map((f) => f.path)
    for (const entry of ['dist/node/index.js', 'dist/node/index.d.ts', 'dist/node/cli/cli.js', 'dist/console/console.js', 'dist/console/console.css', 'package.json']) assert.ok(paths.includes(entry), `${entry} is not in the tarball`)
    assert.deepEqual(paths.filter((p) => /^(dist\/)?(test|bench)\//.test(p)), [])
  })

  it('installs from the tarball and runs a node through `import { FedmeshNode } from \'fedmesh\'`', async () => {
    const project = join(dir, 'project')
    await mkdir(project)
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'fedmesh-user', version: '1.0.0', private: true, type: 'module' }))
    // --offline cannot resolve the version ranges (npm ci caches tarballs, not registry metadata), so
    // the registry is asked only for what the cache lacks. npm runs `prepare` for linked and git
    // dependencies only, never for a tarball: the install would fail here otherwise (the tarball
    // has no tsconfig).
    await run('npm', ['install', join(dir, pack.filename), '--no-audit', '--no-fund', '--prefer-offline'], { cwd: project })
    await writeFile(join(project, 'user.js'), USER_SCRIPT)
    // A non-zero exit (or a hang past the timeout) rejects, with the script's stderr in the message.
    const { stdout } = await run(process.execPath, ['user.js'], { cwd: project, env: { ...process.env, FEDMESH_LOG_LEVEL: 'warn' }, timeout: 60_000 })
    const receipt = JSON.parse(stdout.trim().split('\n').at(-1)!) as { taskId?: unknown, index?: unknown }
    assert.equal(typeof receipt.taskId, 'string')
    assert.ok((receipt.taskId as string).length > 0)
    assert.equal(typeof receipt.index, 'number')
  })
})

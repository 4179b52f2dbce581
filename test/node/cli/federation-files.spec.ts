import '../../../node/runtime/polyfills.js'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CliNode, runCli } from '../../helpers/cli-node.js'

// The README's federation file commands as written (the built CLI): the org root known before a
// first start, `create` with one's own org listed, `join` of a genesis by an org admitted later.
describe('fedmesh init / id / federation create / join, as the README has them', function () {
  this.timeout(60_000)
  let root: string
  const ok = async (args: string[]): Promise<string> => {
    const result = await runCli(args)
    assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`)
    return result.stdout
  }
  const orgRoot = async (dir: string): Promise<string> => (JSON.parse(await ok(['id', '--data-dir', dir, '--json'])) as { orgRoot: string }).orgRoot

  before(async () => { root = await mkdtemp(join(tmpdir(), 'fedmesh-fed-files-')) })
  after(async () => { await rm(root, { recursive: true, force: true }) })

  it('prints the org root before a first start, creates with its own org listed, and lets an admitted org import the genesis after it started', async () => {
    const acme = join(root, 'acme')
    const hooli = join(root, 'hooli')
    await ok(['init', '--data-dir', acme, '--org', 'acme'])
    const acmeRoot = await orgRoot(acme)
    assert.match(await ok(['id', '--data-dir', acme]), new RegExp(`org      acme \\(founded at first start\\)\\norg root ${acmeRoot}\\n`))
    for (const dir of [acme, hooli]) await (await CliNode.start(dir, ['--org', dir === acme ? 'acme' : 'hooli'])).kill('SIGTERM')
    assert.equal(await orgRoot(acme), acmeRoot, 'the first start founds the org with the root init created')

    const others = ['globex', 'initech', 'umbrella'].map((name, i) => `${name}=${String(i + 1).repeat(64)}`)
    const wrong = await runCli(['federation', 'create', '--data-dir', acme, '--member', `acme=${'9'.repeat(64)}`, ...others.flatMap((m) => ['--member', m])])
    assert.equal(wrong.code, 2)
    assert.match(wrong.stderr, new RegExp(`--member acme=9{64}: this node's org is acme \\(root ${acmeRoot}\\) and is a member already; list only the other orgs`))
    const genesis = join(root, 'genesis.json')
    await ok(['federation', 'create', '--data-dir', acme, '--member', `acme=${acmeRoot}`, ...others.flatMap((m) => ['--member', m]), '--out', genesis])
    assert.match(await ok(['federation', 'show', '--data-dir', acme]), /\(4 orgs, tolerates 1 faulty\)/)

    assert.match(await ok(['federation', 'join', genesis, '--data-dir', hooli]), /this org is not in the genesis: import the epoch file it was admitted into next/)
  })
})

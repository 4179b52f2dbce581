import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { federationCommand } from '../../../node/cli/commands/federation.js'
import { FedmeshError } from '../../../base/errors.js'
import { GENESIS_FILE, createGenesis, genesisId, loadGenesis, parseGenesis, validateGenesis, type Genesis } from '../../../node/federation/genesis.js'
import { NodeIdentity } from '../../../base/ed25519.js'
import { loadOrCreateIdentity, generateIdentity } from '../../../node/runtime/key-file.js'
import { encodeCertificate, issueCertificate } from '../../../base/org-certificate.js'
import { CERT_FILE, ORG_ROOT_KEY_FILE } from '../../../node/org/org-identity.js'

const roots = Array.from({ length: 8 }, () => generateIdentity())
const orgs = (n: number): Array<{ name: string, root: string }> => roots.slice(0, n).map((r, i) => ({ name: `org${i}`, root: r.publicKeyHex }))
const rejects = (fn: () => unknown, pattern: RegExp): void => assert.throws(fn, (err: Error) => err instanceof FedmeshError && err.code === 'genesis-invalid' && pattern.test(err.message))

describe('federation genesis', () => {
  it('is signed by its creator, sorted by root key, and round-trips through JSON', () => {
    const g = createGenesis(roots[2]!, orgs(4), 1_000)
    assert.deepEqual(g.orgs.map((o) => o.root), orgs(4).map((o) => o.root).sort())
    const parsed = parseGenesis(JSON.stringify(g))
    assert.deepEqual(parsed, g)
    assert.equal(genesisId(parsed), genesisId(g))
    assert.notEqual(genesisId(createGenesis(roots[2]!, orgs(5), 1_000)), genesisId(g))
  })

  it('refuses tampering, a stranger creator, too few orgs, duplicates and bad parameters', () => {
    const g = createGenesis(roots[0]!, orgs(4), 1_000)
    const tampered: Genesis = { ...g, orgs: g.orgs.map((o, i) => i === 0 ? { ...o, name: 'evil' } : o) }
    rejects(() => validateGenesis(tampered), /not signed/)
    rejects(() => validateGenesis({ ...g, pbft: { ...g.pbft, checkpointInterval: 1000 } }), /checkpointInterval/)
    rejects(() => createGenesis(roots[4]!, orgs(4), 1_000), /creating org must be a member/)
    rejects(() => createGenesis(roots[0]!, orgs(3), 1_000), /4\.\.64 orgs/)
    rejects(() => createGenesis(roots[0]!, [...orgs(3), { name: 'dup', root: roots[0]!.publicKeyHex }], 1_000), /share the root/)
    rejects(() => parseGenesis('{not json'), /not JSON/)
    rejects(() => validateGenesis({ ...g, orgs: [...g.orgs].reverse() }), /sorted/)
  })

  it('bounds the checkpoint interval by the number of orgs, so a view change always fits a message', () => {
    assert.equal(createGenesis(roots[0]!, orgs(4), 1_000, { checkpointInterval: 256, viewChangeTimeoutMs: 2000 }).pbft.checkpointInterval, 256)
    assert.equal(createGenesis(roots[0]!, orgs(8), 1_000, { checkpointInterval: 100, viewChangeTimeoutMs: 2000 }).orgs.length, 8)
    rejects(() => createGenesis(roots[0]!, orgs(8), 1_000, { checkpointInterval: 200, viewChangeTimeoutMs: 2000 }), /would not fit/)
  })
})

describe('fedmesh federation create | join', () => {
  let dir: string
  const quiet = async (args: string[]): Promise<number> => {
    const write = process.stdout.write
    process.stdout.write = () => true
    const stderr = process.stderr.write
    process.stderr.write = () => true
    try {
      return await federationCommand(args)
    } finally {
      process.stdout.write = write
      process.stderr.write = stderr
    }
  }
  // A data dir as `fedmesh start` leaves it: node key, certificate, and (on the founder) the org root.
  const dataDir = async (name: string, root: NodeIdentity, withRoot: boolean): Promise<string> => {
    const d = join(dir, name)
    await mkdir(d, { recursive: true })
    const { identity } = await loadOrCreateIdentity(d)
    if (withRoot) await writeFile(join(d, ORG_ROOT_KEY_FILE), root.exportSeedHex() + '\n', { mode: 0o600 })
    await writeFile(join(d, CERT_FILE), encodeCertificate(issueCertificate(root, { org: name, node: identity.publicKey, issuedAtMs: Date.now() })))
    return d
  }

  before(async () => { dir = await mkdtemp(join(tmpdir(), 'fedmesh-genesis-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('creates a genesis including its own org, and members import it (an outsider too, to be admitted later); forgeries are refused', async () => {
    const founder = await dataDir('org0', roots[0]!, true)
    const out = join(dir, 'genesis.json')
    const members = orgs(4).slice(1).flatMap((o) => ['--member', `${o.name}=${o.root}`])
    assert.equal(await quiet(['create', '--data-dir', founder, '--out', out, '--checkpoint-interval', '8', ...members]), 0)
    const g = parseGenesis(await readFile(out, 'utf8'))
    assert.deepEqual(g.orgs.map((o) => o.name).sort(), ['org0', 'org1', 'org2', 'org3'])
    assert.equal(g.pbft.checkpointInterval, 8)
    assert.deepEqual(await loadGenesis(founder), g)

    const member = await dataDir('org1', roots[1]!, false)
    assert.equal(await quiet(['join', '--data-dir', member, out]), 0)
    assert.equal(genesisId((await loadGenesis(member))!), genesisId(g))

    // An org outside the genesis may import it (an org admitted later does, before its epoch file);
    // it is no member until an epoch file names it, so its node hosts no replica.
    const outsider = await dataDir('org4', roots[4]!, false)
    assert.equal(await quiet(['join', '--data-dir', outsider, out]), 0)
    assert.equal(genesisId((await loadGenesis(outsider))!), genesisId(g))

    const forged = join(dir, 'forged.json')
    await writeFile(forged, JSON.stringify({ ...g, orgs: g.orgs.map((o) => o.name === 'org3' ? { ...o, root: roots[4]!.publicKeyHex } : o) }))
    const again = await dataDir('org2', roots[2]!, false)
    assert.equal(await quiet(['join', '--data-dir', again, forged]), 1)
    assert.equal(await loadGenesis(again), undefined)

    assert.equal(await quiet(['create', '--data-dir', member, ...members]), 1, 'only the org root holder creates a genesis')
    assert.equal(await quiet(['create', '--data-dir', founder, '--member', 'nokey']), 2)
    assert.ok((await readFile(join(founder, GENESIS_FILE), 'utf8')).includes(g.signature))
  })
})

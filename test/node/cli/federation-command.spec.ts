import '../../../node/runtime/polyfills.js'
import assert from 'node:assert/strict'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Level } from 'level'
import {
  AUDIT_HEAD_KEY, auditEntryJson, auditEntryKey, decodeStoredAuditEntry, encodeAuditFields, encodeStoredAuditEntry, hashAuditFieldsBytes,
  parseAuditEntry, type AuditEntry
} from '../../../node/gate/audit.js'
import { encodeCanonical } from '../../../base/codec.js'
import { auditCommand, type FederationVerifyResult } from '../../../node/cli/commands/audit.js'
import { federationCommand } from '../../../node/cli/commands/federation.js'
import { readToken } from '../../../node/runtime/data-dir.js'
import type { Anchor } from '../../../node/federation/state.js'
import { EPOCH_FILE, genesisId, loadEpochFile, type EpochFile } from '../../../node/federation/genesis.js'
import { fromHex } from '../../../base/bytes.js'
import { loadOrCreateIdentity } from '../../../node/runtime/key-file.js'
import { type NodeIdentity } from '../../../base/ed25519.js'
import { FedmeshNode } from '../../../node/node.js'
import { ORG_ROOT_KEY_FILE } from '../../../node/org/org-identity.js'
import { waitFor } from '../../helpers/cli-node.js'
import { InProcessFederation } from '../../helpers/federation-genesis.js'

// The operator surface of federation governance and audit anchoring, over a real in-process
// federation of 4 orgs × 1 node (libp2p on 127.0.0.1, admin API on an ephemeral port): votes and
// anchors over HTTP, `fedmesh federation vote/export/join`, and `fedmesh audit verify --federation`
// catching a log rewritten below what its node anchored through PBFT.

type Output = { code: number, stdout: string, stderr: string }
const capture = async (fn: (out: { stdout(t: string): void, stderr(t: string): void }) => Promise<number>): Promise<Output> => {
  let stdout = ''
  let stderr = ''
  const code = await fn({ stdout: (t) => { stdout += t }, stderr: (t) => { stderr += t } })
  return { code, stdout, stderr }
}
const audit = async (args: string[]): Promise<Output> => await capture(async (out) => await auditCommand(args, out))
const federation = async (args: string[]): Promise<Output> => await capture(async (out) => await federationCommand(args, out))

/** Rewrites entry `fromSeq` with `edit` and re-chains every later entry, hashed and signed as the node would (a forger holding its key). */
function rechain (entries: AuditEntry[], fromSeq: number, edit: (e: AuditEntry) => AuditEntry, signer: NodeIdentity): Array<{ entry: AuditEntry, fieldsBytes: Uint8Array }> {
  const out: Array<{ entry: AuditEntry, fieldsBytes: Uint8Array }> = []
  let prevHash = entries.find((e) => e.seq === fromSeq - 1)?.hash
  for (const original of entries.filter((e) => e.seq >= fromSeq)) {
    const { hash: _hash, sig: _sig, ...fields } = original.seq === fromSeq ? edit(original) : original
    const fieldsBytes = encodeAuditFields({ ...fields, prevHash: prevHash ?? fields.prevHash })
    const hash = hashAuditFieldsBytes(fieldsBytes)
    const entry = { ...fields, prevHash: prevHash ?? fields.prevHash, hash, sig: Buffer.from(signer.sign(fromHex(hash))).toString('hex') }
    out.push({ entry, fieldsBytes })
    prevHash = hash
  }
  return out
}

const forgedDetail = (e: AuditEntry): AuditEntry => ({ ...e, detail: { ...e.detail, forged: 'yes' } })
const jsonLines = (text: string): AuditEntry[] => text.trim().split('\n').map((line) => parseAuditEntry(JSON.parse(line)))

describe('federation operator surface: votes, epoch export, audit anchors (4 orgs in process)', function () {
  this.timeout(40_000)
  const ORGS = ['alpha', 'bravo', 'charlie', 'delta']
  let f: InProcessFederation
  const dir = (name: string): string => f.dir(name)
  const node = (name: string): FedmeshNode => f.node(name)

  const api = async (name: string, path: string, body?: unknown): Promise<{ status: number, json: any }> => {
    const res = await fetch(node(name).apiUrl! + path, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { authorization: `Bearer ${(await readToken(dir(name)))!}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) })
    })
    return { status: res.status, json: await res.json() }
  }
  const anchorsOf = async (name: string, nodeKey: string, count: number): Promise<{ node: string, anchors: Anchor[] }> =>
    await waitFor(`${count} anchors of ${name}'s view of ${nodeKey.slice(0, 8)}`, async () => {
      const { status, json } = await api(name, `/v1/federation/anchors?node=${nodeKey}`)
      return status === 200 && json.anchors.length >= count ? json : undefined
    }, 15_000)

  before(async () => { f = await InProcessFederation.start(ORGS, { api: { host: '127.0.0.1', port: 0 }, federation: { anchorIntervalMs: 300 } }) })
  after(async () => { await f.stop() })

  it('serves a node\'s anchors and this org\'s votes over the admin API', async () => {
    const alpha = node('alpha')
    const own = await anchorsOf('alpha', alpha.key, 1)
    assert.equal(own.node, alpha.key)
    const { json: byDefault } = await api('alpha', '/v1/federation/anchors')
    assert.equal(byDefault.node, alpha.key)
    for (const a of own.anchors) {
      assert.equal(a.node, alpha.key)
      for await (const e of alpha.auditLog.exportSince({ seq: a.auditSeq })) {
        assert.equal(e.hash, a.head, `anchor of entry ${a.auditSeq} matches alpha's log`)
        break
      }
    }
    // Every org holds every node's anchors: bravo's, as alpha's federation state recorded them.
    assert.ok((await anchorsOf('alpha', node('bravo').key, 1)).anchors.every((a) => a.root === node('bravo').orgRoot))
    assert.equal((await api('alpha', '/v1/federation/anchors?node=xyz')).status, 400)

    const echoRoot = 'e0'.repeat(32)
    for (const body of [[], { action: 'frobnicate' }, { action: 'admit', name: 'Not A Name', root: echoRoot }, { action: 'admit', name: 'echo', root: 'abc' }, { action: 'revoke' }]) {
      const { status, json } = await api('alpha', '/v1/federation/votes', body)
      assert.equal(status, 400, `${JSON.stringify(body)}: ${JSON.stringify(json)}`)
    }
    const unknown = await api('alpha', '/v1/federation/votes', { action: 'revoke', org: 'nobody' })
    assert.deepEqual([unknown.status, unknown.json.code], [409, 'not-a-member'])
    const { status, json: receipt } = await api('alpha', '/v1/federation/votes', { action: 'admit', name: 'echo', root: echoRoot.toUpperCase() })
    assert.equal(status, 200)
    assert.deepEqual([receipt.outcome, receipt.reason, receipt.epoch, receipt.accepted], ['approved', '1/3', 0, true])
  })

  it('votes with fedmesh federation vote, exports the epoch and joins an admitted org from it', async () => {
    const echoRoot = 'e0'.repeat(32)
    const voted = await federation(['vote', 'admit', '--name', 'echo', '--root', echoRoot, '--data-dir', dir('bravo')])
    assert.equal(voted.code, 0, voted.stderr)
    assert.match(voted.stdout, /^vote admit echo \(e0e0e0e0e0e0e0e0\): approved \(2\/3\) at epoch 0, seq \d+\n$/)
    for (const args of [['vote'], ['vote', 'admit', '--name', 'echo'], ['vote', 'revoke'], ['vote', 'revoke', '--org', 'delta', '--root', echoRoot]]) {
      assert.equal((await federation([...args, '--data-dir', dir('bravo')])).code, 2, args.join(' '))
    }

    const file = join(f.root, 'epoch.json')
    const exported = await federation(['export', '--out', file, '--data-dir', dir('alpha')])
    assert.equal(exported.code, 0, exported.stderr)
    const epoch = JSON.parse(await readFile(file, 'utf8')) as EpochFile
    assert.deepEqual(epoch, node('alpha').federation.epochFile())
    assert.deepEqual({ ...epoch, core: undefined }, { genesis: genesisId(f.genesis), epoch: 0, orgs: f.genesis.orgs, core: undefined })
    assert.deepEqual({ ...JSON.parse((await federation(['export', '--data-dir', dir('charlie')])).stdout), core: undefined }, { ...epoch, core: undefined })

    // Echo's operator: the genesis first, then the epoch it was admitted into (here one naming echo).
    const echo = join(f.root, 'echo')
    await mkdir(echo)
    const echoKey = (await loadOrCreateIdentity(echo, ORG_ROOT_KEY_FILE)).identity.publicKeyHex
    const admitted: EpochFile = { genesis: genesisId(f.genesis), epoch: 1, orgs: [...f.genesis.orgs, { name: 'echo', root: echoKey }].sort((a, b) => a.root < b.root ? -1 : 1) }
    const admittedFile = join(f.root, 'admitted.json')
    await writeFile(admittedFile, JSON.stringify(admitted))
    const noGenesis = await federation(['join', admittedFile, '--data-dir', echo])
    assert.deepEqual([noGenesis.code, /join the genesis file first/.test(noGenesis.stderr)], [1, true])
    const genesisFile = join(f.root, 'genesis.json')
    await writeFile(genesisFile, JSON.stringify(f.genesis))
    assert.equal((await federation(['join', genesisFile, '--data-dir', echo])).code, 0)
    const notMember = await federation(['join', file, '--data-dir', echo])
    assert.deepEqual([notMember.code, /not a member of epoch 0/.test(notMember.stderr)], [1, true])
    const foreign = join(f.root, 'foreign.json')
    await writeFile(foreign, JSON.stringify({ ...admitted, genesis: 'ab'.repeat(16) }))
    assert.match((await federation(['join', foreign, '--data-dir', echo])).stderr, /belongs to federation abab/)
    const unsorted = join(f.root, 'unsorted.json')
    await writeFile(unsorted, JSON.stringify({ ...admitted, orgs: [...admitted.orgs].reverse() }))
    assert.match((await federation(['join', unsorted, '--data-dir', echo])).stderr, /bad epoch file/)
    assert.equal(await loadEpochFile(echo), undefined)
    const joined = await federation(['join', admittedFile, '--json', '--data-dir', echo])
    assert.equal(joined.code, 0, joined.stderr)
    assert.deepEqual(JSON.parse(joined.stdout), { id: genesisId(f.genesis), epoch: 1, path: join(echo, EPOCH_FILE) })
    assert.deepEqual(await loadEpochFile(echo), admitted)
  })

  it('audit verify --federation passes on an honest running node', async () => {
    await anchorsOf('alpha', node('alpha').key, 2)
    const result = await audit(['verify', '--federation', '--json', '--data-dir', dir('alpha')])
    assert.equal(result.code, 0, result.stdout + result.stderr)
    const report = JSON.parse(result.stdout) as FederationVerifyResult
    assert.deepEqual([report.ok, report.node, report.chain.ok, report.failures], [true, node('alpha').key, true, []])
    assert.ok(report.anchors >= 2)
    assert.match((await audit(['verify', '--federation', '--data-dir', dir('alpha')])).stdout, /^ok: \d+ entries, head [0-9a-f]{64}; \d+ anchors in the federation match\n$/)
  })

  it('checks another node\'s export against its anchors: a rewritten or truncated export fails', async () => {
    const bravo = node('bravo')
    const anchors = await anchorsOf('alpha', bravo.key, 2)
    const anchorsFile = join(f.root, 'bravo-anchors.json')
    await writeFile(anchorsFile, JSON.stringify(anchors))
    // Exported after the anchors were read, so it covers every one of them.
    const entries = jsonLines((await audit(['export', '--data-dir', dir('bravo')])).stdout)
    const exportFile = join(f.root, 'bravo.jsonl')
    const check = async (lines: AuditEntry[]): Promise<FederationVerifyResult & { code: number }> => {
      await writeFile(exportFile, lines.map((e) => auditEntryJson(e) + '\n').join(''))
      const result = await audit(['verify', '--file', exportFile, '--node', bravo.key, '--anchors', anchorsFile, '--json', '--data-dir', dir('alpha')])
      return { ...JSON.parse(result.stdout) as FederationVerifyResult, code: result.code }
    }
    const honest = await check(entries)
    assert.deepEqual([honest.code, honest.ok, honest.anchors], [0, true, anchors.anchors.length])

    // Rewritten at the oldest anchored entry and re-chained with bravo's own key: only the anchors tell.
    const first = anchors.anchors[0]!
    const { identity: bravoKey } = await loadOrCreateIdentity(dir('bravo'))
    const forged = [...entries.filter((e) => e.seq < first.auditSeq), ...rechain(entries, first.auditSeq, forgedDetail, bravoKey).map((f) => f.entry)]
    const rewritten = await check(forged)
    assert.deepEqual([rewritten.code, rewritten.ok, rewritten.chain.ok, rewritten.firstBadSeq], [1, false, true, first.auditSeq])
    assert.equal(rewritten.failures.length, anchors.anchors.length)
    assert.deepEqual({ ...rewritten.failures[0]!, message: '' }, { seq: first.seq, epoch: first.epoch, auditSeq: first.auditSeq, head: first.head, problem: 'mismatch', firstBadSeq: first.auditSeq, message: '' })

    // Cut off below the newest anchor: that anchor names the truncation.
    const last = anchors.anchors.at(-1)!
    const truncated = await check(entries.filter((e) => e.seq < last.auditSeq))
    assert.deepEqual([truncated.code, truncated.chain.ok, truncated.failures.map((f) => [f.seq, f.problem, f.firstBadSeq])], [1, true, [[last.seq, 'missing', last.auditSeq]]])

    // Edited without the key just below the newest anchor: the chain breaks there and that anchor fails with it.
    const editedSeq = last.auditSeq - 1
    const broken = await check(entries.map((e) => e.seq === editedSeq ? { ...e, org: 'org-evil' } : e))
    assert.deepEqual([broken.code, broken.chain.ok, broken.firstBadSeq], [1, false, editedSeq])
    assert.deepEqual(broken.failures.at(-1)!.seq, last.seq)
    assert.ok(broken.failures.every((f) => f.auditSeq >= editedSeq && f.firstBadSeq === editedSeq && f.problem === (f.auditSeq === editedSeq ? 'mismatch' : 'chain-broken')))
  })

  it('audit verify --federation --anchors FILE fails once an anchored entry is rewritten in the stopped node\'s LevelDB', async () => {
    const alpha = node('alpha')
    const anchors = await anchorsOf('alpha', alpha.key, 2)
    const anchorsFile = join(f.root, 'alpha-anchors.json')
    await writeFile(anchorsFile, JSON.stringify(anchors))
    await alpha.stop()
    f.nodes.delete('alpha')
    const verify = async (): Promise<Output> => await audit(['verify', '--federation', '--anchors', anchorsFile, '--data-dir', dir('alpha')])
    const honest = await verify()
    assert.equal(honest.code, 0, honest.stdout + honest.stderr)

    // A forger with the node's key rewrites the oldest anchored entry and re-chains the rest and the head.
    const target = anchors.anchors[0]!
    const { identity } = await loadOrCreateIdentity(dir('alpha'))
    const db = new Level<string, Uint8Array>(join(dir('alpha'), 'db'), { valueEncoding: 'view' })
    try {
      const entries: AuditEntry[] = []
      for await (const [key, value] of db.iterator({ gte: auditEntryKey(target.auditSeq - 1), lt: AUDIT_HEAD_KEY })) {
        if (key !== AUDIT_HEAD_KEY) entries.push(decodeStoredAuditEntry(value).entry)
      }
      const forged = rechain(entries, target.auditSeq, forgedDetail, identity)
      await db.batch([
        ...forged.map((f) => ({ type: 'put' as const, key: auditEntryKey(f.entry.seq), value: encodeStoredAuditEntry(f.fieldsBytes, f.entry.hash, fromHex(f.entry.sig)) })),
        { type: 'put' as const, key: AUDIT_HEAD_KEY, value: encodeCanonical({ seq: forged.at(-1)!.entry.seq, hash: forged.at(-1)!.entry.hash }) }
      ])
    } finally {
      await db.close()
    }
    // The chain alone cannot tell; the anchors can.
    assert.equal((await audit(['verify', '--data-dir', dir('alpha')])).code, 0)
    const tampered = await verify()
    assert.equal(tampered.code, 1)
    assert.match(tampered.stdout, new RegExp(`^TAMPERED: anchor seq ${target.seq} \\(epoch ${target.epoch}\\) of audit entry ${target.auditSeq}: .*first bad audit seq ${target.auditSeq}\\n`))
    assert.match(tampered.stdout, new RegExp(`FAILED: node ${alpha.key}, first bad audit seq ${target.auditSeq} \\(${anchors.anchors.length} of ${anchors.anchors.length} anchors do not hold\\)\\n$`))
    // Without a running node and without --anchors, there is nothing to check against.
    assert.equal((await audit(['verify', '--federation', '--data-dir', dir('alpha')])).code, 2)
  })
})

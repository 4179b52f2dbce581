import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { AuditLog, auditTail, parseAuditEntry, verifyAuditLog, type AuditEntry } from '../../../node/gate/audit.js'
import { auditCommand } from '../../../node/cli/commands/audit.js'
import { loadOrCreateToken, writeRuntime } from '../../../node/runtime/data-dir.js'
import { loadOrCreateIdentity } from '../../../node/runtime/key-file.js'
import { LevelStorage } from '../../../node/runtime/level-storage.js'
import { manualClock, sampleInput } from '../gate/audit-helpers.js'

async function run (args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const code = await auditCommand(args, { stdout: (text) => { stdout += text }, stderr: (text) => { stderr += text } })
  return { code, stdout, stderr }
}

async function collect<T> (iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = []
  for await (const item of iterable) items.push(item)
  return items
}

const jsonLines = (text: string): AuditEntry[] => text.trim().split('\n').map((line) => parseAuditEntry(JSON.parse(line)))

describe('fedmesh audit', () => {
  let dataDir: string
  let entries: AuditEntry[]

  beforeEach(async () => {
    const clock = manualClock(Date.parse('2026-01-01T00:00:00Z'))
    dataDir = await mkdtemp(join(tmpdir(), 'fedmesh-cli-audit-'))
    const { identity } = await loadOrCreateIdentity(dataDir)
    const storage = await LevelStorage.open(join(dataDir, 'db'))
    const log = await AuditLog.open({ storage, signer: identity, clock })
    entries = []
    for (let i = 0; i < 5; i++) {
      entries.push(await log.append(sampleInput(i)))
      clock.advance(60_000)
    }
    await storage.close()
  })
  afterEach(async () => { await rm(dataDir, { recursive: true, force: true }) })

  it('tails the last entries as text and as JSON lines', async () => {
    const text = await run(['tail', '-n', '2', '--data-dir', dataDir])
    assert.equal(text.code, 0)
    const lines = text.stdout.split('\n')
    assert.deepEqual(lines.map((line) => line.slice(0, 6)), ['     4', '     5', ''])
    assert.match(lines[0]!, /^\s+4 {2}2026-01-01T00:03:00\.000Z {2}policy\.decision\s+reject {2}peer=abababababab {2}org=org-b {2}digest=[0-9a-f]{12} {2}rule="rule-3" reason="sample"$/)
    const json = await run(['tail', '-n', '3', '--json', '--data-dir', dataDir])
    assert.deepEqual(jsonLines(json.stdout), entries.slice(2))
  })

  it('exports JSON lines since a seq or a time', async () => {
    assert.deepEqual(jsonLines((await run(['export', '--data-dir', dataDir])).stdout), entries)
    assert.deepEqual(jsonLines((await run(['export', '--since', '4', '--data-dir', dataDir])).stdout), entries.slice(3))
    const byTime = await run(['export', '--since-time', '2026-01-01T00:02:00Z', '--data-dir', dataDir])
    assert.deepEqual(jsonLines(byTime.stdout), entries.slice(2))
  })

  it('verifies an intact log with exit 0', async () => {
    const text = await run(['verify', '--data-dir', dataDir])
    assert.equal(text.code, 0)
    assert.equal(text.stdout, `ok: 5 entries, head ${entries[4]!.hash}\n`)
    const json = await run(['verify', '--json', '--data-dir', dataDir])
    assert.deepEqual(JSON.parse(json.stdout), { ok: true, count: 5, headHash: entries[4]!.hash })
  })

  it('exits 1 naming the first bad seq of a tampered log', async () => {
    const db = new Level<string, Uint8Array>(join(dataDir, 'db'), { valueEncoding: 'view' })
    await db.del(`audit/${'3'.padStart(20, '0')}`)
    await db.close()
    const text = await run(['verify', '--data-dir', dataDir])
    assert.equal(text.code, 1)
    assert.match(text.stdout, /^TAMPERED: first bad entry is seq 3 \(seq-gap\)/)
    const json = await run(['verify', '--json', '--data-dir', dataDir])
    assert.equal(json.code, 1)
    assert.deepEqual({ ...JSON.parse(json.stdout), message: undefined }, { ok: false, firstBadSeq: 3, reason: 'seq-gap', message: undefined })
  })

  it('reads through the node\'s API while the node holds the database', async () => {
    const running = await LevelStorage.open(join(dataDir, 'db'))
    const { identity } = await loadOrCreateIdentity(dataDir)
    const token = await loadOrCreateToken(dataDir)
    const asked: string[] = []
    // A stand-in for the node's admin API, answering from the database the "node" holds.
    const api = createServer((req, res) => {
      asked.push(req.url ?? '')
      if (req.headers.authorization !== `Bearer ${token}`) return res.writeHead(401).end()
      const answer = req.url === '/v1/audit/verify'
        ? verifyAuditLog(running, identity.publicKeyHex)
        : collect(auditTail(running, Number(new URL(req.url ?? '', 'http://x').searchParams.get('tail'))))
      void answer.then((body) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body)))
    })
    try {
      await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve))
      const { port } = api.address() as AddressInfo
      await writeRuntime(dataDir, {
        pid: process.pid, key: identity.publicKeyHex, peerId: '', org: 'org-a', api: `http://127.0.0.1:${port}`, multiaddrs: [], startedAt: new Date().toISOString()
      })
      const verified = await run(['verify', '--data-dir', dataDir])
      assert.equal(verified.code, 0)
      assert.equal(verified.stdout, `ok: 5 entries, head ${entries[4]!.hash}\n`)
      assert.deepEqual(jsonLines((await run(['tail', '-n', '2', '--json', '--data-dir', dataDir])).stdout), entries.slice(3))
      assert.deepEqual(asked, ['/v1/audit/verify', '/v1/audit?tail=2'])
    } finally {
      api.close()
      await running.close()
    }
  })

  it('creates nothing in a data dir without a node', async () => {
    const empty = join(dataDir, 'elsewhere')
    const result = await run(['verify', '--data-dir', empty])
    assert.equal(result.code, 2)
    assert.match(result.stderr, /no fedmesh node in .*elsewhere/)
    assert.equal(existsSync(empty), false)
  })

  it('reports a node that has never started', async () => {
    const fresh = join(dataDir, 'fresh')
    await mkdir(fresh)
    await loadOrCreateIdentity(fresh)
    const result = await run(['tail', '--data-dir', fresh])
    assert.equal(result.code, 2)
    assert.match(result.stderr, /has no database yet/)
    assert.equal(existsSync(join(fresh, 'db')), false)
  })

  it('verify --federation --anchors checks the stopped node\'s log against anchors it is given', async () => {
    const { identity } = await loadOrCreateIdentity(dataDir)
    const node = identity.publicKeyHex
    const anchor = (auditSeq: number, head: string, seq: number): object => ({ node, root: 'cd'.repeat(32), auditSeq, head, epoch: 0, seq })
    const file = join(dataDir, 'anchors.json')
    const verify = async (anchors: object): Promise<{ code: number, stdout: string, stderr: string }> => {
      await writeFile(file, JSON.stringify(anchors))
      return await run(['verify', '--federation', '--anchors', file, '--json', '--data-dir', dataDir])
    }
    const honest = await verify({ node, anchors: [anchor(2, entries[1]!.hash, 1), anchor(4, entries[3]!.hash, 2)] })
    assert.equal(honest.code, 0, honest.stderr)
    assert.deepEqual(JSON.parse(honest.stdout), { ok: true, node, chain: { ok: true, count: 5, headHash: entries[4]!.hash }, anchors: 2, failures: [] })
    // An anchor the log contradicts, and one past its end.
    const failed = JSON.parse((await verify({ node, anchors: [anchor(2, entries[1]!.hash, 1), anchor(3, 'ef'.repeat(32), 2), anchor(7, 'ef'.repeat(32), 3)] })).stdout)
    assert.deepEqual([failed.ok, failed.firstBadSeq, failed.failures.map((f: { seq: number, problem: string, firstBadSeq: number }) => [f.seq, f.problem, f.firstBadSeq])],
      [false, 3, [[2, 'mismatch', 3], [3, 'missing', 6]]])
    for (const bad of [{ node: 'ab'.repeat(32), anchors: [] }, { node, anchors: [{ ...anchor(2, 'xyz', 1) }] }, { node, anchors: 'all' }]) {
      const result = await verify(bad)
      assert.equal(result.code, 2, JSON.stringify(bad))
      assert.match(result.stderr, /bad anchors/)
    }
  })

  it('rejects bad usage with exit 2', async () => {
    for (const args of [[], ['frobnicate'], ['tail', '-n', 'many'], ['tail', '--bogus'], ['export', '--since', '1', '--since-time', '2026-01-01'],
      ['export', '--since', '-3'], ['export', '--since-time', 'yesterday'], ['verify', '--file', 'export.jsonl'], ['verify', '--node', 'ab'.repeat(32)],
      ['verify', '--file', 'export.jsonl', '--node', 'nokey']]) {
      const result = await run([...args, '--data-dir', dataDir])
      assert.equal(result.code, 2, args.join(' '))
      assert.match(result.stderr, /usage:/)
    }
  })
})

import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { AuditLog, parseAuditEntry, type AuditEntry } from '../../node/audit.js'
import { auditCommand } from '../../node/commands/audit.js'
import { loadOrCreateIdentity } from '../../node/identity.js'
import { LevelStorage } from '../../node/level-storage.js'
import { manualClock, sampleInput } from './audit-helpers.js'

async function run (args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const code = await auditCommand(args, { stdout: (text) => { stdout += text }, stderr: (text) => { stderr += text } })
  return { code, stdout, stderr }
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

  it('says to stop the node when its database is locked', async () => {
    const running = await LevelStorage.open(join(dataDir, 'db'))
    try {
      const result = await run(['verify', '--data-dir', dataDir])
      assert.equal(result.code, 2)
      assert.match(result.stderr, /is running \(its database is locked\): stop it first, or read the audit log through its HTTP API/)
    } finally {
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

  it('rejects bad usage with exit 2', async () => {
    for (const args of [[], ['frobnicate'], ['tail', '-n', 'many'], ['tail', '--bogus'], ['export', '--since', '1', '--since-time', '2026-01-01'],
      ['export', '--since', '-3'], ['export', '--since-time', 'yesterday']]) {
      const result = await run([...args, '--data-dir', dataDir])
      assert.equal(result.code, 2, args.join(' '))
      assert.match(result.stderr, /usage:/)
    }
  })
})

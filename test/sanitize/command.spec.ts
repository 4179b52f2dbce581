import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sanitizeCommand, type SanitizeCommandIo } from '../../node/cli/commands/sanitize.js'

interface Run { code: number, stdout: string, stderr: string }

async function run (args: string[], stdin: string): Promise<Run> {
  let stdout = ''
  let stderr = ''
  const io: SanitizeCommandIo = {
    stdout: (text) => { stdout += text },
    stderr: (text) => { stderr += text },
    readStdin: async (bytesMax) => {
      assert.ok(Buffer.byteLength(stdin) <= bytesMax)
      return stdin
    }
  }
  const code = await sanitizeCommand(args, io)
  return { code, stdout, stderr }
}

describe('fedmesh sanitize', () => {
  let dataDir: string
  beforeEach(async () => { dataDir = await mkdtemp(join(tmpdir(), 'fedmesh-sanitize-')) })
  afterEach(async () => { await rm(dataDir, { recursive: true, force: true }) })

  it('writes clean JSON to stdout and the report to stderr', async () => {
    const result = await run(['--data-dir', dataDir], '{"note":"mail bob@example.com","password":"p"}')
    assert.equal(result.code, 0)
    assert.deepEqual(JSON.parse(result.stdout), { note: 'mail [REDACTED:email]', password: '[REDACTED:sensitive-field]' })
    assert.equal(result.stderr, 'sanitize: 2 redactions (email 1, sensitive-field 1)\n')
  })

  it('prints the report as JSON with --json, or into a file with --report', async () => {
    const json = await run(['--json', '--data-dir', dataDir], '["10.0.0.1"]')
    assert.deepEqual(JSON.parse(json.stderr), { redactions: { 'ip-address': 1 }, blocked: false })
    const file = join(dataDir, 'report.json')
    const written = await run(['--report', file, '--data-dir', dataDir], '["10.0.0.1"]')
    assert.equal(written.stderr, '')
    assert.deepEqual(JSON.parse(await readFile(file, 'utf8')), { redactions: { 'ip-address': 1 }, blocked: false })
  })

  it('hashes with a salt it creates once (mode 0600) in the data dir', async () => {
    const args = ['--mode', 'email=hash', '--data-dir', dataDir]
    const first = await run(args, '"bob@example.com"')
    const salt = await stat(join(dataDir, 'sanitize.salt'))
    assert.equal(salt.mode & 0o777, 0o600)
    const second = await run(args, '"bob@example.com"')
    assert.match(JSON.parse(first.stdout) as string, /^\[email:[0-9a-f]{10}\]$/)
    assert.equal(second.stdout, first.stdout)
  })

  it('exits 3 when blocked, printing nothing on stdout', async () => {
    const blocked = await run(['--mode', 'email=block', '--data-dir', dataDir], '{"to":"bob@example.com"}')
    assert.equal(blocked.code, 3)
    assert.equal(blocked.stdout, '')
    assert.equal(blocked.stderr, 'sanitize: BLOCKED, nothing sent (email 1)\n')
  })

  it('scrubs plain text with --text', async () => {
    const result = await run(['--text', '--data-dir', dataDir], 'from 10.0.0.1 to bob@example.com\n')
    assert.equal(result.code, 0)
    assert.equal(result.stdout, 'from [REDACTED:ip-address] to [REDACTED:email]\n')
  })

  it('exits 2 on bad JSON, bad overrides, unknown flags and limit violations', async () => {
    for (const [args, stdin] of [
      [[], '{nope'], [['--mode', 'email'], '1'], [['--mode', 'mail=mask'], '1'], [['--mode', 'email=shred'], '1'],
      [['--bogus'], '1'], [[], '['.repeat(100) + ']'.repeat(100)]
    ] as Array<[string[], string]>) {
      const result = await run([...args, '--data-dir', dataDir], stdin)
      assert.equal(result.code, 2, `${args.join(' ')} ${stdin}`)
      assert.equal(result.stdout, '')
      assert.match(result.stderr, /^fedmesh sanitize: /)
    }
  })
})

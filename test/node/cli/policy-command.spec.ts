import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'mocha'
import { policyCommand } from '../../../node/cli/commands/policy.js'

const PEER = 'ab'.repeat(32)
const POLICY = `capabilities:
  summarize:
    allow:
      - orgs: [acme]
        minTrust: 0.4
        when: [{ field: amount, op: le, value: 1000 }]
`

async function run (args: string[]): Promise<{ code: number, out: string, err: string }> {
  const out: string[] = []
  const err: string[] = []
  const { log, error } = console
  console.log = (...parts: unknown[]) => { out.push(parts.join(' ')) }
  console.error = (...parts: unknown[]) => { err.push(parts.join(' ')) }
  try {
    const code = await policyCommand(args)
    return { code, out: out.join('\n'), err: err.join('\n') }
  } finally {
    console.log = log
    console.error = error
  }
}

describe('fedmesh policy (CLI)', () => {
  let dir: string
  let good: string
  let bad: string

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fedmesh-policy-cli-'))
    good = join(dir, 'policy.yaml')
    bad = join(dir, 'bad.yaml')
    await writeFile(good, POLICY, { mode: 0o600 })
    await writeFile(bad, POLICY.replace('op: le', 'op: lte'), { mode: 0o600 })
  })

  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('check: ok with counts, or FILE:LINE: reason and exit 1', async () => {
    assert.deepEqual(await run(['check', good]), { code: 0, out: 'ok: 1 capabilities, 1 rules', err: '' })
    const failed = await run(['check', bad])
    assert.equal(failed.code, 1)
    assert.equal(failed.err, `${bad}:6: unknown op 'lte' (ops: eq, ne, lt, le, gt, ge, in)`)
    const json = await run(['check', bad, '--json'])
    assert.deepEqual(JSON.parse(json.out), { ok: false, code: 'policy-invalid', file: bad, line: 6, reason: "unknown op 'lte' (ops: eq, ne, lt, le, gt, ge, in)" })
    assert.equal((await run(['check', join(dir, 'missing.yaml')])).code, 1)
  })

  it('explain: prints the decision, the rule and why', async () => {
    const base = ['explain', '--peer', PEER, '--org', 'acme', '--capability', 'summarize', '--data-dir', dir]
    const allowed = await run([...base, '--payload', '{"amount": 5}'])
    assert.equal(allowed.code, 0)
    assert.match(allowed.out, /^allow \(rule summarize.allow\[0\]\)\n/)
    const denied = await run([...base, '--payload', '{"amount": 5}', '--trust', '0.1', '--json'])
    assert.equal(denied.code, 1)
    const decision = JSON.parse(denied.out)
    assert.deepEqual([decision.decision, decision.rule, decision.policyFound], ['deny', 'summarize.allow[0]', true])
    assert.match(decision.reason, /trust 0.100 is below minTrust 0.4/)
    const other = await run(['explain', '--peer', PEER, '--org', 'initech', '--capability', 'summarize', '--file', good, '--json'])
    assert.equal(JSON.parse(other.out).rule, 'default-deny')
  })

  it('explain: a data dir without a policy denies everything', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'fedmesh-policy-cli-empty-'))
    try {
      const result = await run(['explain', '--peer', PEER, '--org', 'acme', '--capability', 'summarize', '--data-dir', empty])
      assert.equal(result.code, 1)
      assert.match(result.out, /^deny \(rule default-deny\)/)
      assert.match(result.out, /no policy file/)
    } finally {
      await rm(empty, { recursive: true, force: true })
    }
  })

  it('rejects bad usage with exit 2', async () => {
    for (const args of [
      [], ['frobnicate'], ['check'], ['check', 'a', 'b'], ['check', good, '--bogus'],
      ['explain', '--org', 'acme', '--capability', 's'],
      ['explain', '--peer', 'xyz', '--org', 'acme', '--capability', 's'],
      ['explain', '--peer', PEER, '--org', 'acme', '--capability', 's', '--trust', '2'],
      ['explain', '--peer', PEER, '--org', 'acme', '--capability', 's', '--payload', '{nope'],
      ['explain', '--peer', PEER, '--org', 'acme', '--capability', 's', '--file', good, '--data-dir', dir]
    ]) {
      const result = await run(args)
      assert.equal(result.code, 2, args.join(' '))
      assert.match(result.err, /usage:/)
    }
  })
})

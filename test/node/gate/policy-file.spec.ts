import assert from 'node:assert/strict'
import { chmod, mkdir, mkdtemp, rename, rm, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { afterEach, beforeEach, describe, it } from 'mocha'
import { pino } from 'pino'
import { PolicyWatcher, POLICY_FILE, loadPolicyFile } from '../../../node/gate/policy-file.js'
import { PolicyError, type PolicyRequest } from '../../../node/gate/policy.js'

const VALID = 'capabilities:\n  summarize:\n    allow:\n      - orgs: [acme]\n'
const VALID_TWO = 'capabilities:\n  summarize:\n    allow:\n      - orgs: [acme, globex]\n  translate:\n    allow:\n      - orgs: [acme]\n'
const INVALID = 'capabilities:\n  summarize:\n    allow:\n      - orgs: [acme]\n        minTrust: lots\n'
const REQUEST: PolicyRequest = { peer: 'ab'.repeat(32), org: 'acme', capability: 'summarize', payload: {}, payloadBytes: 2 }
const CTX = { nowMs: 0, trust: 0.5 }

// The first event of this type that matches (an in-place write may show a truncated file first).
function nextEvent (target: EventTarget, type: string, matches = (_e: CustomEvent) => true): Promise<CustomEvent> {
  const timeoutMs = 5000
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no matching ${type} event within ${timeoutMs} ms`)), timeoutMs)
    const listener = (event: Event): void => {
      if (!matches(event as CustomEvent)) return
      clearTimeout(timer)
      target.removeEventListener(type, listener)
      resolve(event as CustomEvent)
    }
    target.addEventListener(type, listener)
  })
}

/** Replaces the policy file atomically, as editors and deploy tools do. */
async function writePolicy (dir: string, text: string): Promise<void> {
  const temp = join(dir, `${POLICY_FILE}.tmp`)
  await writeFile(temp, text, { mode: 0o600 })
  await chmod(temp, 0o600)
  await rename(temp, join(dir, POLICY_FILE))
}

describe('PolicyWatcher (real files)', () => {
  let dir: string
  let watcher: PolicyWatcher
  let logs: Array<Record<string, unknown>>

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fedmesh-policy-'))
    logs = []
    const sink = new Writable({ write (chunk, _enc, done) { logs.push(JSON.parse(String(chunk))); done() } })
    watcher = new PolicyWatcher({ dataDir: dir, debounceMs: 20, logger: pino({ level: 'info' }, sink) })
  })

  afterEach(async () => {
    await watcher.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('denies everything when there is no policy file', async () => {
    await watcher.start()
    assert.equal(watcher.policy.ruleCount, 0)
    assert.equal(watcher.decide(REQUEST, CTX).decision, 'deny')
  })

  it('reloads on change, rejects an invalid file keeping the previous policy, then accepts a fix', async () => {
    await writePolicy(dir, VALID)
    await watcher.start()
    assert.equal(watcher.decide(REQUEST, CTX).decision, 'allow')
    const inForce = watcher.policy
    assert.equal(await watcher.reload(), false, 'an unchanged file keeps the policy and its buckets')
    assert.equal(watcher.policy, inForce)

    const rejected = nextEvent(watcher, 'policy:rejected')
    await writePolicy(dir, INVALID)
    const err = (await rejected).detail as PolicyError
    assert.equal(err.line, 5)
    assert.match(err.reason, /'minTrust' must be a number/)
    assert.equal(watcher.decide(REQUEST, CTX).decision, 'allow', 'the previous policy stays in force')
    const logged = logs.find((l) => l.msg === 'policy rejected; the previous policy stays in force')
    assert.ok(logged !== undefined)
    assert.deepEqual([logged.line, logged.reason, logged.code], [5, err.reason, 'policy-invalid'])

    const loaded = nextEvent(watcher, 'policy:loaded')
    await writePolicy(dir, VALID_TWO)
    assert.deepEqual((await loaded).detail, { source: join(dir, POLICY_FILE), capabilities: 2, rules: 2 })
    assert.equal(watcher.decide({ ...REQUEST, capability: 'translate' }, CTX).decision, 'allow')
  })

  it('sees a file written in place and a deleted file', async () => {
    await watcher.start()
    const loaded = nextEvent(watcher, 'policy:loaded', (e) => e.detail.rules === 1)
    await writeFile(join(dir, POLICY_FILE), VALID, { mode: 0o600 })
    await loaded
    assert.equal(watcher.decide(REQUEST, CTX).decision, 'allow')

    const emptied = nextEvent(watcher, 'policy:loaded')
    await unlink(join(dir, POLICY_FILE))
    assert.equal((await emptied).detail.rules, 0)
    assert.equal(watcher.decide(REQUEST, CTX).decision, 'deny')
  })

  it('rejects an invalid file at start and stays deny-all', async () => {
    await writePolicy(dir, INVALID)
    const rejected = nextEvent(watcher, 'policy:rejected')
    await watcher.start()
    assert.equal(((await rejected).detail as PolicyError).line, 5)
    assert.equal(watcher.decide(REQUEST, CTX).decision, 'deny')
  })

  it('rejects a policy path that is not a regular file', async () => {
    await mkdir(join(dir, POLICY_FILE))
    await assert.rejects(loadPolicyFile(join(dir, POLICY_FILE)), (err: unknown) => err instanceof PolicyError && /not a regular file/.test(err.reason))
  })

  it('refuses a policy file that group or others may write', async () => {
    await writePolicy(dir, VALID)
    await chmod(join(dir, POLICY_FILE), 0o666)
    await assert.rejects(loadPolicyFile(join(dir, POLICY_FILE)), (err: unknown) => err instanceof PolicyError && /writable by group or others/.test(err.reason))
    await watcher.start()
    assert.equal(watcher.decide(REQUEST, CTX).decision, 'deny')
  })
})

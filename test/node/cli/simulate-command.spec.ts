import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { simulateCommand } from '../../../node/cli/commands/simulate.js'
import type { FederationSimReport } from '../../../simulations/federation/scenario.js'
import { FAILING_SEED } from '../../simulation/fixtures/federation-sim-double.js'
import { randomScenario } from '../../../simulations/federation/federation-sim.js'

// `fedmesh simulate` around a test double of the simulator: flags, the sweep on worker threads, the
// replay line and the report files (the simulator's own behaviour is tested with the simulator).
const DOUBLE = new URL('../../simulation/fixtures/federation-sim-double.ts', import.meta.url)

async function simulate (args: string[], simulator = DOUBLE): Promise<{ code: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const code = await simulateCommand(args, { stdout: (t) => { stdout += t }, stderr: (t) => { stderr += t } }, simulator)
  return { code, stdout, stderr }
}

describe('fedmesh simulate (with a test double of the simulator)', () => {
  let dir: string
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'fedmesh-simulate-')) })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  it('fails clearly while the simulator is not built', async () => {
    const { code, stderr } = await simulate(['--seed', '1'], new URL('../../simulation/fixtures/no-federation-sim.js', import.meta.url))
    assert.equal(code, 1)
    assert.match(stderr, /the federation simulator is not in this build \(.*no-federation-sim\.js is missing\)/)
  })

  it('refuses a bad scenario with exit 2, naming the field', async () => {
    const { code, stderr } = await simulate(['--orgs', '4', '--byzantine', 'alpha=silent', '--byzantine', 'bravo=silent'])
    assert.equal(code, 2)
    assert.match(stderr, /^fedmesh simulate: --byzantine: 2 byzantine orgs, but 4 orgs tolerate at most f = 1\n/)
    assert.equal((await simulate(['--seeds', '0'])).code, 2)
    assert.equal((await simulate(['--seeds', '3', '--trace'])).code, 2)
  })

  it('--swarm draws every setting but --orgs/--nodes from the seed, as randomScenario does, and refuses other settings', async () => {
    const out = join(dir, 'swarm')
    const { code, stdout } = await simulate(['--swarm', '--orgs', '5', '--seed', '42', '--out', out])
    assert.equal(code, 0, stdout)
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as FederationSimReport
    assert.deepEqual(report.scenario, randomScenario(42, { orgs: 5 }))
    const sweep = await simulate(['--swarm', '--seed', '40', '--seeds', '3', '--workers', '1'])
    assert.equal(sweep.code, 0)
    assert.match(sweep.stderr, /swarm: every setting drawn from each seed/)
    const refused = await simulate(['--swarm', '--duration', '5s'])
    assert.equal(refused.code, 2)
    assert.match(refused.stderr, /--swarm draws every setting but --orgs and --nodes from the seed: drop --duration/)
  })

  it('runs one seed and writes report.json and report.html', async () => {
    const out = join(dir, 'report')
    const { code, stdout } = await simulate(['--seed', '5', '--duration', '10s', '--out', out])
    assert.equal(code, 0)
    assert.match(stdout, /^seed 5: ok \(/)
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as FederationSimReport
    assert.equal(report.scenario.seed, 5)
    assert.equal(report.scenario.durationMs, 10_000)
    assert.match(await readFile(join(out, 'report.html'), 'utf8'), /OK: no invariant violated, seed 5/)
  })

  it('sweeps seeds on worker threads, stops at the failure and prints the command that replays it', async () => {
    const out = join(dir, 'sweep')
    const { code, stdout } = await simulate(['--seed', String(FAILING_SEED - 3), '--seeds', '10', '--workers', '2', '--orgs', '5', '--out', out])
    assert.equal(code, 1)
    assert.match(stdout, new RegExp(`^FAILED seed ${FAILING_SEED}: VIOLATED agreement: `, 'm'))
    const replay = /^replay: (.*)$/m.exec(stdout)?.[1]
    assert.equal(replay, `fedmesh simulate --orgs 5 --out ${out} --seed ${FAILING_SEED} --trace`)
    assert.equal((JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as FederationSimReport).seed, FAILING_SEED)

    const again = await simulate(replay!.split(' ').slice(2))
    assert.equal(again.code, 1)
    assert.match(again.stdout, /^trace: every line$/m)
    assert.match(again.stdout, new RegExp(`^FAILED seed ${FAILING_SEED}: VIOLATED agreement`, 'm'))
    assert.equal(/^replay: (.*)$/m.exec(again.stdout)?.[1], replay)
  })

  it('writes no report for a sweep that passes', async () => {
    const out = join(dir, 'none')
    const { code, stdout, stderr } = await simulate(['--seed', '1', '--seeds', '4', '--workers', '2', '--out', out])
    assert.equal(code, 0)
    assert.match(stdout, /^4\/4 seeds ok from seed 1/)
    assert.match(stderr, /seeds 4\/4 done, \d+ seeds\/min, 0 failed/)
    assert.equal(existsSync(out), false)
  })
})

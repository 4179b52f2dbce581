import assert from 'node:assert/strict'
import { loadScenario, parseMs, SCENARIO_DEFAULTS, ScenarioError, type ScenarioSources } from '../../simulations/federation/scenario-file.js'

const FILE = `
seed: 42
orgs: 4
nodesPerOrg: 3
durationMs: 20s
livenessMsMax: 1m
workload: { tasksPerSecond: 50 }
network:
  interOrgMs: [5ms, 40]
faults:
  - { atMs: 2s, kind: kill-leader, target: alpha }
  - { atMs: 5000, kind: partition-org, target: delta, ms: 3s }
  - { atMs: 5500, kind: partition-orgs, ms: 2s }
  - { atMs: 5600, kind: kill-leader, target: bravo/1 }
  - { atMs: 6s, kind: clock-skew, target: bravo/2, ms: -1500ms }
  - { atMs: 15s, kind: heal }
byzantine:
  charlie: equivocate
`

function fieldOf (sources: Partial<ScenarioSources>): string {
  try {
    loadScenario({ defaultSeed: 1, ...sources })
  } catch (err) {
    assert.ok(err instanceof ScenarioError, `not a ScenarioError: ${String(err)}`)
    assert.ok(err.message.startsWith(`${err.field}: `))
    return err.field
  }
  assert.fail('accepted')
}

describe('scenario files and flags', () => {
  it('defaults to a 4 × 3 federation with random faults, seeded by the caller', () => {
    assert.deepEqual(loadScenario({ defaultSeed: 7 }), { ...SCENARIO_DEFAULTS, seed: 7 })
  })

  it('reads a YAML file: units, partial sections over the defaults, a fault schedule, byzantine orgs', () => {
    const s = loadScenario({ yaml: FILE, defaultSeed: 1 })
    assert.equal(s.seed, 42)
    assert.equal(s.durationMs, 20_000)
    assert.equal(s.livenessMsMax, 60_000)
    assert.deepEqual(s.workload, { tasksPerSecond: 50, concurrency: SCENARIO_DEFAULTS.workload.concurrency })
    assert.deepEqual(s.network, { ...SCENARIO_DEFAULTS.network, interOrgMs: [5, 40] })
    assert.deepEqual(s.faults, [
      { atMs: 2000, kind: 'kill-leader', target: 'alpha' },
      { atMs: 5000, kind: 'partition-org', target: 'delta', ms: 3000 },
      { atMs: 5500, kind: 'partition-orgs', ms: 2000 },
      { atMs: 5600, kind: 'kill-leader', target: 'bravo/1' },
      { atMs: 6000, kind: 'clock-skew', target: 'bravo/2', ms: -1500 },
      { atMs: 15_000, kind: 'heal' }
    ])
    assert.deepEqual(s.byzantine, { charlie: 'equivocate' })
  })

  it('takes a report\'s scenario (JSON) back as a file unchanged', () => {
    const s = loadScenario({ yaml: FILE, defaultSeed: 1 })
    assert.deepEqual(loadScenario({ yaml: JSON.stringify(s), defaultSeed: 9 }), s)
  })

  it('lets flags override the file', () => {
    const s = loadScenario({
      yaml: FILE,
      defaultSeed: 1,
      flags: { seed: '5', orgs: '7', nodes: '1', duration: '1500ms', liveness: '2000', 'tasks-per-second': '2.5', concurrency: '9', faults: 'none', byzantine: ['golf=silent', 'alpha=replay'] }
    })
    assert.deepEqual({ ...s, network: undefined, diskMs: undefined }, {
      seed: 5, orgs: 7, nodesPerOrg: 1, durationMs: 1500, livenessMsMax: 2000, workload: { tasksPerSecond: 2.5, concurrency: 9 },
      faults: [], byzantine: { golf: 'silent', alpha: 'replay' }, network: undefined, diskMs: undefined
    })
  })

  it('names the bad field: its YAML path, or the flag it came from', () => {
    const cases: Array<[Partial<ScenarioSources>, string]> = [
      [{ yaml: 'orgs: 3' }, 'orgs'],
      [{ yaml: 'orgs: 11' }, 'orgs'],
      [{ flags: { orgs: 'four' } }, '--orgs'],
      [{ flags: { nodes: '6' } }, '--nodes'],
      [{ yaml: 'nodesPerOrg: 0' }, 'nodesPerOrg'],
      [{ yaml: 'nodes: 3' }, 'nodes'],
      [{ yaml: 'seed: -1' }, 'seed'],
      [{ yaml: 'durationMs: 30 sec' }, 'durationMs'],
      [{ flags: { duration: '1.5ms' } }, '--duration'],
      [{ flags: { duration: '500ms' } }, '--duration'],
      [{ flags: { 'tasks-per-second': '0' } }, '--tasks-per-second'],
      [{ yaml: 'workload: { rate: 3 }' }, 'workload.rate'],
      [{ yaml: 'workload: 3' }, 'workload'],
      [{ yaml: 'network: { interOrgMs: [50, 10] }' }, 'network.interOrgMs[1]'],
      [{ yaml: 'network: { dropPerMille: 1001 }' }, 'network.dropPerMille'],
      [{ yaml: 'diskMs: [1]' }, 'diskMs'],
      [{ yaml: 'faults: sometimes' }, 'faults'],
      [{ flags: { faults: 'sometimes' } }, '--faults'],
      [{ yaml: 'faults: [{ atMs: 1s, kind: meteor }]' }, 'faults[0].kind'],
      [{ yaml: 'durationMs: 10s\nfaults: [{ atMs: 1s, kind: crash }, { atMs: 10s, kind: crash }]' }, 'faults[1].atMs'],
      [{ yaml: 'faults: [{ atMs: 1s, kind: crash, target: echo }]' }, 'faults[0].target'],
      [{ yaml: 'faults: [{ atMs: 1s, kind: crash, target: alpha/3 }]' }, 'faults[0].target'],
      [{ yaml: 'faults: [{ atMs: 1s, kind: crash, target: alpha }]' }, 'faults[0].target'],
      [{ yaml: 'faults: [{ atMs: 1s, kind: partition-orgs, target: alpha }]' }, 'faults[0].target'],
      [{ yaml: 'faults: [{ atMs: 1s, kind: partition-org, target: alpha/0 }]' }, 'faults[0].target'],
      [{ yaml: 'faults: [{ atMs: 1s, kind: heal, target: alpha }]' }, 'faults[0].target'],
      [{ yaml: 'faults: [{ atMs: 1s, kind: crash, ms: 5 }]' }, 'faults[0].ms'],
      [{ yaml: 'faults: [{ atMs: 1s, kind: partition-org, ms: -5 }]' }, 'faults[0].ms'],
      [{ yaml: 'faults: [{ atMs: 1s, kind: crash, when: 2 }]' }, 'faults[0].when'],
      [{ yaml: 'byzantine: { alpha: silent, bravo: silent }' }, 'byzantine'],
      [{ yaml: 'byzantine: { echo: silent }' }, 'byzantine.echo'],
      [{ yaml: 'byzantine: { alpha: sneaky }' }, 'byzantine.alpha'],
      [{ flags: { byzantine: ['alpha'] } }, '--byzantine'],
      [{ flags: { byzantine: ['alpha=sneaky'] } }, '--byzantine'],
      [{ yaml: 'orgs: [4', source: 'x.yaml' }, 'x.yaml'],
      [{ yaml: '- 4', source: 'x.yaml' }, 'x.yaml']
    ]
    for (const [sources, field] of cases) assert.equal(fieldOf(sources), field, JSON.stringify(sources))
  })

  it('allows f = ⌊(n−1)/3⌋ byzantine orgs', () => {
    assert.deepEqual(Object.keys(loadScenario({ defaultSeed: 1, flags: { orgs: '7', byzantine: ['alpha=silent', 'bravo=forge'] } }).byzantine), ['alpha', 'bravo'])
    assert.equal(fieldOf({ flags: { orgs: '6', byzantine: ['alpha=silent', 'bravo=forge'] } }), '--byzantine')
  })

  it('parses times', () => {
    assert.equal(parseMs(250), 250)
    assert.equal(parseMs('250'), 250)
    assert.equal(parseMs('500ms'), 500)
    assert.equal(parseMs('1.5s'), 1500)
    assert.equal(parseMs('2m'), 120_000)
    assert.equal(parseMs('-2s'), -2000)
    for (const bad of ['', '2h', '1.5ms', 'ms', 1.5, null, '3 s s']) assert.equal(parseMs(bad), undefined, String(bad))
  })
})

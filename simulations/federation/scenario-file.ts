import { parse as parseYaml } from 'yaml'
import { FedmeshError } from '../../base/errors.js'
import { BYZANTINE_KINDS, type ByzantineKind, type FaultKind, type FaultStep, type Scenario } from './scenario.js'

// A scenario from a YAML file and/or `fedmesh simulate` flags (flags win), validated field by
// field: every error names the field (its YAML path, or the flag it came from). The file's keys are
// the Scenario's own, so a report's `scenario` can be fed back as a file; times are numbers of ms or
// strings with a unit ('500ms', '30s', '2m').

export const ORGS_MIN = 4
export const ORGS_MAX = 10
export const NODES_MIN = 1
export const NODES_MAX = 5
const SIMULATED_MS_MAX = 3_600_000
const LATENCY_MS_MAX = 60_000
const DURATION_MS_MIN = 1000
const TASKS_PER_SECOND_MIN = 0.1
const TASKS_PER_SECOND_MAX = 1000
const CONCURRENCY_MAX = 1000

/** Org names by position: the simulator's and the scenario's (fault targets, byzantine orgs). */
export const ORG_NAMES = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet'] as const

export function orgNames (orgs: number): string[] {
  return ORG_NAMES.slice(0, orgs)
}

/** Byzantine orgs a federation of n orgs tolerates. */
export function faultTolerance (orgs: number): number {
  return Math.floor((orgs - 1) / 3)
}

/**
 * What each fault may name as its target (an org, a node `org/index` counted from 0, either, or
 * nothing: the simulator draws the sides or the victim), and what its `ms` means (a clock jump,
 * which may be negative, or how long a partition lasts).
 */
type TargetKind = 'org' | 'node' | 'org-or-node' | 'none'
export const FAULT_SPECS: Readonly<Record<FaultKind, { target: TargetKind, ms: 'jump' | 'duration' | 'none' }>> = {
  'partition-org': { target: 'org', ms: 'duration' },
  'partition-orgs': { target: 'none', ms: 'duration' },
  'partition-one-way': { target: 'none', ms: 'duration' },
  'isolate-primary-host': { target: 'none', ms: 'duration' },
  crash: { target: 'node', ms: 'none' },
  'kill-leader': { target: 'org-or-node', ms: 'none' },
  restart: { target: 'node', ms: 'none' },
  'clock-skew': { target: 'node', ms: 'jump' },
  heal: { target: 'none', ms: 'none' },
  'vote-admit': { target: 'none', ms: 'none' },
  'vote-revoke': { target: 'org', ms: 'none' }
}
export const FAULT_KINDS = Object.keys(FAULT_SPECS) as FaultKind[]

/** Everything but the seed: a 4 × 3 federation, about 10–20 s of one core per seed. */
export const SCENARIO_DEFAULTS: Readonly<Omit<Scenario, 'seed'>> = {
  orgs: 4,
  nodesPerOrg: 3,
  durationMs: 10_000,
  livenessMsMax: 30_000,
  workload: { tasksPerSecond: 20, concurrency: 4 },
  network: { intraOrgMs: [1, 5], interOrgMs: [10, 50], dropPerMille: 10, duplicatePerMille: 5 },
  faults: 'random',
  byzantine: {},
  diskMs: [1, 10]
}

/** The flags that set scenario fields, as parseArgs gives them. */
export interface ScenarioFlags {
  seed?: string
  orgs?: string
  nodes?: string
  duration?: string
  liveness?: string
  'tasks-per-second'?: string
  concurrency?: string
  faults?: string
  byzantine?: string[]
}

// Each flag and the scenario field it sets.
const FLAG_FIELDS: Record<Exclude<keyof ScenarioFlags, 'byzantine'>, string[]> = {
  seed: ['seed'],
  orgs: ['orgs'],
  nodes: ['nodesPerOrg'],
  duration: ['durationMs'],
  liveness: ['livenessMsMax'],
  'tasks-per-second': ['workload', 'tasksPerSecond'],
  concurrency: ['workload', 'concurrency'],
  faults: ['faults']
}

export class ScenarioError extends FedmeshError {
  constructor (readonly field: string, problem: string) {
    super('scenario-invalid', `${field}: ${problem}`)
    this.name = 'ScenarioError'
  }
}

export interface ScenarioSources {
  /** A scenario file's text (YAML, or JSON), and its name for errors. */
  yaml?: string
  source?: string
  flags?: ScenarioFlags
  /** The seed when neither the file nor the flags give one. */
  defaultSeed: number
}

export function loadScenario (sources: ScenarioSources): Scenario {
  const raw = sources.yaml === undefined ? {} : parseFile(sources.yaml, sources.source ?? 'scenario')
  const fromFlags = new Map<string, string>()
  for (const [flag, path] of Object.entries(FLAG_FIELDS)) {
    const value = sources.flags?.[flag as keyof typeof FLAG_FIELDS]
    if (value === undefined) continue
    setPath(raw, path, /^-?\d+(\.\d+)?$/.test(value) ? Number(value) : value)
    fromFlags.set(path.join('.'), `--${flag}`)
  }
  if (sources.flags?.byzantine !== undefined) {
    raw.byzantine = Object.fromEntries(sources.flags.byzantine.map(byzantineFlag))
    fromFlags.set('byzantine', '--byzantine')
  }
  // A field set by a flag is named by its flag (byzantine.ORG by --byzantine).
  return validateScenario(raw, sources.defaultSeed, (path) => fromFlags.get(path) ?? fromFlags.get(path.split('.')[0]!) ?? path)
}

function parseFile (text: string, source: string): Record<string, unknown> {
  let value: unknown
  try {
    value = parseYaml(text)
  } catch (err) {
    throw new ScenarioError(source, (err as Error).message)
  }
  if (value === null || value === undefined) return {}
  if (!isRecord(value)) throw new ScenarioError(source, 'a scenario file holds a mapping of fields')
  return value
}

function byzantineFlag (text: string): [string, string] {
  const at = text.indexOf('=')
  if (at <= 0) throw new ScenarioError('--byzantine', `expected ORG=KIND, got '${text}'`)
  return [text.slice(0, at), text.slice(at + 1)]
}

function setPath (target: Record<string, unknown>, path: string[], value: unknown): void {
  const [head, ...rest] = path as [string, ...string[]]
  if (rest.length === 0) {
    target[head] = value
    return
  }
  const child = target[head]
  const next: Record<string, unknown> = isRecord(child) ? child : {}
  target[head] = next
  setPath(next, rest, value)
}

/** Checks a raw scenario (a parsed file with flags applied) against the ranges the simulator supports. */
function validateScenario (raw: Record<string, unknown>, defaultSeed: number, label: (path: string) => string): Scenario {
  const v = new Fields(label)
  v.known(raw, '', ['seed', 'orgs', 'nodesPerOrg', 'durationMs', 'livenessMsMax', 'workload', 'network', 'faults', 'byzantine', 'diskMs'])
  const d = SCENARIO_DEFAULTS
  const workload = v.record(raw.workload, 'workload', ['tasksPerSecond', 'concurrency'])
  const network = v.record(raw.network, 'network', ['intraOrgMs', 'interOrgMs', 'dropPerMille', 'duplicatePerMille'])
  const orgs = v.integer(raw.orgs ?? d.orgs, 'orgs', ORGS_MIN, ORGS_MAX)
  const nodesPerOrg = v.integer(raw.nodesPerOrg ?? d.nodesPerOrg, 'nodesPerOrg', NODES_MIN, NODES_MAX)
  const durationMs = v.time(raw.durationMs ?? d.durationMs, 'durationMs', DURATION_MS_MIN, SIMULATED_MS_MAX)
  const context = { orgs: orgNames(orgs), nodesPerOrg, durationMs }
  return {
    seed: v.integer(raw.seed ?? defaultSeed, 'seed', 0, 0xffff_ffff),
    orgs,
    nodesPerOrg,
    durationMs,
    livenessMsMax: v.time(raw.livenessMsMax ?? d.livenessMsMax, 'livenessMsMax', 1, SIMULATED_MS_MAX),
    workload: {
      tasksPerSecond: v.number(workload.tasksPerSecond ?? d.workload.tasksPerSecond, 'workload.tasksPerSecond', TASKS_PER_SECOND_MIN, TASKS_PER_SECOND_MAX),
      concurrency: v.integer(workload.concurrency ?? d.workload.concurrency, 'workload.concurrency', 1, CONCURRENCY_MAX)
    },
    network: {
      intraOrgMs: v.range(network.intraOrgMs ?? d.network.intraOrgMs, 'network.intraOrgMs'),
      interOrgMs: v.range(network.interOrgMs ?? d.network.interOrgMs, 'network.interOrgMs'),
      dropPerMille: v.number(network.dropPerMille ?? d.network.dropPerMille, 'network.dropPerMille', 0, 1000),
      duplicatePerMille: v.number(network.duplicatePerMille ?? d.network.duplicatePerMille, 'network.duplicatePerMille', 0, 1000)
    },
    faults: v.faults(raw.faults ?? d.faults, context),
    byzantine: v.byzantine(raw.byzantine ?? d.byzantine, context.orgs),
    diskMs: v.range(raw.diskMs ?? d.diskMs, 'diskMs')
  }
}

// The field checks; `label` turns a field's path into what the user wrote (a flag, or the path).
class Fields {
  constructor (private readonly label: (path: string) => string) {}

  fail (path: string, problem: string): never {
    throw new ScenarioError(this.label(path), problem)
  }

  known (value: Record<string, unknown>, path: string, keys: string[]): void {
    for (const key of Object.keys(value)) {
      if (!keys.includes(key)) this.fail(path === '' ? key : `${path}.${key}`, `unknown field (expected one of ${keys.join(', ')})`)
    }
  }

  record (value: unknown, path: string, keys: string[]): Record<string, unknown> {
    if (value === undefined) return {}
    if (!isRecord(value)) this.fail(path, `must be a mapping of ${keys.join(', ')}`)
    this.known(value, path, keys)
    return value
  }

  number (value: unknown, path: string, min: number, max: number): number {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
      this.fail(path, `must be a number from ${min} to ${max} (got ${show(value)})`)
    }
    return value
  }

  integer (value: unknown, path: string, min: number, max: number): number {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) this.fail(path, `must be an integer ${min}..${max} (got ${show(value)})`)
    return value
  }

  time (value: unknown, path: string, min: number, max: number): number {
    const ms = parseMs(value)
    if (ms === undefined) this.fail(path, `must be a time: ms as a number, or a string such as '500ms', '30s', '2m' (got ${show(value)})`)
    if (ms < min || ms > max) this.fail(path, `must be from ${min} to ${max} ms (got ${show(value)})`)
    return ms
  }

  range (value: unknown, path: string): [number, number] {
    if (!Array.isArray(value) || value.length !== 2) this.fail(path, `must be [min, max] (got ${show(value)})`)
    const min = this.time(value[0], `${path}[0]`, 0, LATENCY_MS_MAX)
    const max = this.time(value[1], `${path}[1]`, min, LATENCY_MS_MAX)
    return [min, max]
  }

  faults (value: unknown, context: { orgs: string[], nodesPerOrg: number, durationMs: number }): FaultStep[] | 'random' {
    if (value === 'random') return 'random'
    if (value === 'none') return []
    if (!Array.isArray(value)) this.fail('faults', `must be 'random', 'none' or a list of steps {atMs, kind, target?, ms?} (got ${show(value)})`)
    return value.map((step: unknown, i) => {
      const path = `faults[${i}]`
      if (!isRecord(step)) this.fail(path, 'must be a mapping {atMs, kind, target?, ms?}')
      this.known(step, path, ['atMs', 'kind', 'target', 'ms'])
      const kind = step.kind
      if (typeof kind !== 'string' || !(FAULT_KINDS as string[]).includes(kind)) this.fail(`${path}.kind`, `must be one of ${FAULT_KINDS.join(', ')} (got ${show(kind)})`)
      const spec = FAULT_SPECS[kind as FaultKind]
      const fault: FaultStep = { atMs: this.time(step.atMs, `${path}.atMs`, 0, context.durationMs - 1), kind: kind as FaultKind }
      if (step.target !== undefined) fault.target = this.target(step.target, `${path}.target`, spec.target, context)
      if (step.ms !== undefined) {
        if (spec.ms === 'none') this.fail(`${path}.ms`, `${kind} takes no ms`)
        fault.ms = spec.ms === 'jump' ? this.time(step.ms, `${path}.ms`, -SIMULATED_MS_MAX, SIMULATED_MS_MAX) : this.time(step.ms, `${path}.ms`, 1, SIMULATED_MS_MAX)
      }
      return fault
    })
  }

  target (value: unknown, path: string, kind: TargetKind, context: { orgs: string[], nodesPerOrg: number }): string {
    if (kind === 'none') this.fail(path, 'this fault takes no target: the simulator draws it')
    const nodes = context.orgs.flatMap((org) => Array.from({ length: context.nodesPerOrg }, (_, i) => `${org}/${i}`))
    const allowed = [...(kind === 'node' ? [] : context.orgs), ...(kind === 'org' ? [] : nodes)]
    if (typeof value !== 'string' || !allowed.includes(value)) {
      const what = { org: 'an org', node: 'a node', 'org-or-node': 'an org or a node' }[kind]
      this.fail(path, `must be ${what} of this scenario (orgs ${context.orgs.join(', ')}; nodes ORG/0..ORG/${context.nodesPerOrg - 1}) (got ${show(value)})`)
    }
    return value
  }

  byzantine (value: unknown, orgs: string[]): Record<string, ByzantineKind> {
    if (!isRecord(value)) this.fail('byzantine', `must be a mapping ORG: KIND (got ${show(value)})`)
    const f = faultTolerance(orgs.length)
    const entries = Object.entries(value)
    if (entries.length > f) this.fail('byzantine', `${entries.length} byzantine orgs, but ${orgs.length} orgs tolerate at most f = ${f}`)
    for (const [org, kind] of entries) {
      if (!orgs.includes(org)) this.fail(`byzantine.${org}`, `not an org of this scenario: ${orgs.join(', ')}`)
      if (typeof kind !== 'string' || !(BYZANTINE_KINDS as readonly string[]).includes(kind)) this.fail(`byzantine.${org}`, `must be one of ${BYZANTINE_KINDS.join(', ')} (got ${show(kind)})`)
    }
    return { ...value } as Record<string, ByzantineKind>
  }
}

/** Milliseconds from a number (ms) or '500ms' / '30s' / '2m' (integral ms), else undefined. */
export function parseMs (value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value : undefined
  if (typeof value !== 'string') return undefined
  const m = /^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/.exec(value)
  if (m === null) return undefined
  const ms = Number(m[1]) * (m[2] === 'm' ? 60_000 : m[2] === 's' ? 1000 : 1)
  return Number.isSafeInteger(ms) ? ms : undefined
}

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function show (value: unknown): string {
  return value === undefined ? 'nothing' : typeof value === 'string' ? `'${value}'` : JSON.stringify(value)
}

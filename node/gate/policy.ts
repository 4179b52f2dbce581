import assert from 'node:assert/strict'
import { Lexer, LineCounter, isAlias, isMap, isNode, isScalar, isSeq, parseDocument, type Node } from 'yaml'
import { FedmeshError } from '../../base/errors.js'
import { RateLimiter, type BucketRequest } from './rate-limiter.js'

// Default-deny capability policy. A request is allowed only by a rule that names the requester and
// whose every limit holds; anything else is denied. The file (<data-dir>/policy.yaml, YAML or JSON):
//
//   capabilities:
//     summarize:                           # capability name: [a-z0-9][a-z0-9._-]*
//       allow:                             # rules, tried in order
//         - orgs: [acme, globex]           # requester's org is listed, or
//           peers: [<64 hex ed25519 key>]  #   its key is (at least one list)
//           rateLimit: { perPeerPerMinute: 60, perOrgPerMinute: 600 }   # token buckets
//           maxPayloadBytes: 65536
//           minTrust: 0.4                  # requester's trust score, in [0, 1]
//           when:                          # all must hold; a missing field fails
//             - { field: amount, op: le, value: 1000 }     # dotted path into the JSON payload
//             - { field: kind, op: in, value: [short, long] }
//
// Ops: eq, ne (any scalar), lt, le, gt, ge (numbers), in (a list of scalars). Unknown keys, wrong
// types, bad ops and bad peer keys are rejected with the line they are on (PolicyError).
//
// decide() tries the capability's rules in order. The first rule that names the requester and whose
// payload, trust and field limits hold decides: it takes a token from its per-peer and per-org
// buckets (keyed by rule and peer or org) and allows, or denies if a bucket is empty. If no rule
// decides, the reply names the first rule that named the requester and the limit it failed, or
// 'default-deny'. Rate-limit state lives in the Policy, so a reload starts with full buckets.

export type ConditionOp = 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge' | 'in'
export type Scalar = string | number | boolean | null

export interface Condition {
  field: string
  op: ConditionOp
  value: Scalar | Scalar[]
}

export interface AllowRule {
  /** Stable name in decisions and logs: '<capability>.allow[<index>]'. */
  id: string
  orgs: ReadonlySet<string>
  peers: ReadonlySet<string>
  rateLimit: { perPeerPerMinute?: number, perOrgPerMinute?: number }
  maxPayloadBytes?: number
  minTrust?: number
  when: Condition[]
}

export interface PolicyRequest {
  peer: string
  org: string
  capability: string
  payload: unknown
  payloadBytes: number
}

export interface PolicyContext {
  nowMs: number
  trust: number
}

/** Why a request was denied, for the caller to act on (reason is for people). */
export type DenyCause = 'no-rule' | 'payload-too-large' | 'low-trust' | 'condition' | 'rate-limit'

export interface PolicyDecision {
  decision: 'allow' | 'deny'
  rule: string
  reason: string
  /** Set on every denial from Policy.decide(). */
  cause?: DenyCause
}

export const DEFAULT_DENY = 'default-deny'
export const POLICY_TEXT_BYTES_MAX = 1024 * 1024
const CAPABILITIES_MAX = 1024
const RULES_PER_CAPABILITY_MAX = 256
const NAMES_PER_RULE_MAX = 4096
const CONDITIONS_PER_RULE_MAX = 32
const IN_VALUES_MAX = 1024
const STRING_VALUE_LENGTH_MAX = 1024
const PER_MINUTE_MAX = 1_000_000
const PAYLOAD_BYTES_LIMIT_MAX = 64 * 1024 * 1024
const RATE_BUCKETS_MAX = 10_000
const NESTING_DEPTH_MAX = 32

const CAPABILITY_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/
const ORG_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
const PEER_KEY = /^[0-9a-fA-F]{64}$/
const FIELD_PATH = /^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,7}$/
const OPS: ReadonlySet<string> = new Set<ConditionOp>(['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'in'])
const RULE_KEYS = ['orgs', 'peers', 'rateLimit', 'maxPayloadBytes', 'minTrust', 'when']

export class PolicyError extends FedmeshError {
  constructor (readonly source: string, readonly line: number, readonly reason: string) {
    super('policy-invalid', `${source}:${line}: ${reason}`)
    this.name = 'PolicyError'
  }
}

export class Policy {
  readonly #capabilities: ReadonlyMap<string, readonly AllowRule[]>
  readonly #limiter = new RateLimiter(RATE_BUCKETS_MAX)

  private constructor (readonly source: string, capabilities: ReadonlyMap<string, readonly AllowRule[]>) {
    this.#capabilities = capabilities
  }

  /** The policy with no rules: denies everything (used when there is no policy file). */
  static empty (source = '<empty>'): Policy {
    return new Policy(source, new Map())
  }

  /** Parses and validates a policy; throws PolicyError with the offending line. */
  static parse (text: string, source: string): Policy {
    if (Buffer.byteLength(text) > POLICY_TEXT_BYTES_MAX) {
      throw new PolicyError(source, 1, `policy is larger than ${POLICY_TEXT_BYTES_MAX} bytes`)
    }
    checkNesting(text, source)
    const lineCounter = new LineCounter()
    const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false })
    const reader: NodeReader = new NodeReader(source, lineCounter)
    const [error] = doc.errors
    if (error !== undefined) throw new PolicyError(source, reader.lineAt(error.pos[0]), error.message.split('\n')[0]!)
    if (doc.contents === null) return new Policy(source, new Map())
    const top = reader.map(doc.contents, 'the policy', ['capabilities'])
    const capabilities = new Map<string, AllowRule[]>()
    const capabilityNodes = top.get('capabilities')
    if (capabilityNodes === undefined || isNullScalar(capabilityNodes.value)) return new Policy(source, capabilities)
    const entries = reader.entries(capabilityNodes.value, "'capabilities'", CAPABILITIES_MAX)
    for (const { name, key, value } of entries) {
      if (!CAPABILITY_NAME.test(name)) reader.fail(key, `capability name '${name}' must match ${CAPABILITY_NAME.source}`)
      const rules = reader.map(value, `capability '${name}'`, ['allow']).get('allow')
      if (rules === undefined) reader.fail(value, `capability '${name}' needs an 'allow' list`)
      const ruleNodes = reader.seq(rules.value, `'${name}.allow'`, RULES_PER_CAPABILITY_MAX)
      capabilities.set(name, ruleNodes.map((node, i) => parseRule(reader, node, `${name}.allow[${i}]`)))
    }
    return new Policy(source, capabilities)
  }

  get capabilityCount (): number {
    return this.#capabilities.size
  }

  get ruleCount (): number {
    let count = 0
    for (const rules of this.#capabilities.values()) count += rules.length
    return count
  }

  rules (capability: string): readonly AllowRule[] {
    return this.#capabilities.get(capability) ?? []
  }

  decide (request: PolicyRequest, context: PolicyContext): PolicyDecision {
    assert.ok(Number.isSafeInteger(request.payloadBytes), 'payloadBytes must be an integer')
    assert.ok(request.payloadBytes >= 0, 'payloadBytes must be >= 0')
    assert.ok(context.trust >= 0 && context.trust <= 1, `trust must be in [0, 1]: ${context.trust}`)
    const peer = request.peer.toLowerCase()
    // Names from the wire are clipped: reasons end up in logs and audit entries.
    const who = `peer ${peer.slice(0, 16)}… of org '${clip(request.org)}'`
    const capability = clip(request.capability)
    const rules = this.#capabilities.get(request.capability)
    if (rules === undefined) return deny(DEFAULT_DENY, 'no-rule', `no rule allows capability '${capability}'`)
    let firstFailure: PolicyDecision | undefined
    for (const rule of rules) {
      const named = rule.peers.has(peer) ? 'peer' : rule.orgs.has(request.org) ? 'org' : undefined
      if (named === undefined) continue
      const failure = limitFailure(rule, request, context)
      if (failure !== undefined) {
        firstFailure ??= deny(rule.id, failure.cause, `${who}: ${failure.text}`)
        continue
      }
      const taken = this.#limiter.take(bucketRequests(rule, peer, request.org), context.nowMs)
      if (!taken.ok) {
        const scope = taken.key.startsWith(`${rule.id}\0peer`) ? 'perPeerPerMinute' : 'perOrgPerMinute'
        return deny(rule.id, 'rate-limit', `${who}: rate limit ${scope} exceeded; retry after ${taken.retryAfterMs} ms`)
      }
      return { decision: 'allow', rule: rule.id, reason: `${who} is named by ${named} and within every limit` }
    }
    const unnamed = `${who} is named by none of the ${rules.length} rule(s) for '${capability}'`
    return firstFailure ?? deny(DEFAULT_DENY, 'no-rule', unnamed)
  }
}

// yaml composes nodes recursively: a deeply nested document overflows the stack, and V8 has been
// seen to abort the process soon after. A policy nests a few levels, so deep ones are refused first,
// using yaml's own (iterative) lexer so that brackets inside strings and comments do not count.
function checkNesting (text: string, source: string): void {
  const deepIndent = /^[ \t-]{256}/m.exec(text)
  if (deepIndent !== null) throw new PolicyError(source, lineOfOffset(text, deepIndent.index), 'policy is indented too deeply')
  let line = 1
  let depth = 0
  for (const token of new Lexer().lex(text)) {
    if (token === '{' || token === '[') {
      if (++depth > NESTING_DEPTH_MAX) throw new PolicyError(source, line, `policy nests deeper than ${NESTING_DEPTH_MAX} levels`)
    } else if (token === '}' || token === ']') {
      depth--
    }
    for (let i = token.indexOf('\n'); i !== -1; i = token.indexOf('\n', i + 1)) line++
  }
}

function lineOfOffset (text: string, offset: number): number {
  let line = 1
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) line++
  return line
}

function clip (name: string): string {
  return name.length <= 64 ? name : `${name.slice(0, 64)}…`
}

function deny (rule: string, cause: DenyCause, reason: string): PolicyDecision {
  return { decision: 'deny', rule, reason, cause }
}

interface LimitFailure { cause: DenyCause, text: string }

function limitFailure (rule: AllowRule, request: PolicyRequest, context: PolicyContext): LimitFailure | undefined {
  if (rule.maxPayloadBytes !== undefined && request.payloadBytes > rule.maxPayloadBytes) {
    const text = `payload of ${request.payloadBytes} bytes exceeds maxPayloadBytes ${rule.maxPayloadBytes}`
    return { cause: 'payload-too-large', text }
  }
  if (rule.minTrust !== undefined && context.trust < rule.minTrust) {
    return { cause: 'low-trust', text: `trust ${context.trust.toFixed(3)} is below minTrust ${rule.minTrust}` }
  }
  for (const condition of rule.when) {
    const actual = readField(request.payload, condition.field)
    if (actual === undefined) return { cause: 'condition', text: `payload field '${condition.field}' is missing` }
    if (!holds(actual, condition)) {
      const shown = JSON.stringify(actual)?.slice(0, 80)
      const text = `payload field '${condition.field}' = ${shown} fails ${condition.op} ${JSON.stringify(condition.value)}`
      return { cause: 'condition', text }
    }
  }
  return undefined
}

function bucketRequests (rule: AllowRule, peer: string, org: string): BucketRequest[] {
  const { perPeerPerMinute, perOrgPerMinute } = rule.rateLimit
  const out: BucketRequest[] = []
  if (perPeerPerMinute !== undefined) out.push({ key: `${rule.id}\0peer\0${peer}`, perMinute: perPeerPerMinute })
  if (perOrgPerMinute !== undefined) out.push({ key: `${rule.id}\0org\0${org}`, perMinute: perOrgPerMinute })
  return out
}

/** The value at a dotted path (array elements by index), or undefined if any step is missing. */
function readField (payload: unknown, path: string): unknown {
  let value = payload
  for (const segment of path.split('.')) {
    if (typeof value !== 'object' || value === null) return undefined
    if (Array.isArray(value) && !/^\d+$/.test(segment)) return undefined
    if (!Object.hasOwn(value, segment)) return undefined
    value = (value as Record<string, unknown>)[segment]
  }
  return value
}

function holds (actual: unknown, { op, value }: Condition): boolean {
  switch (op) {
    case 'eq': return actual === value
    case 'ne': return actual !== value
    case 'in': return (value as Scalar[]).includes(actual as Scalar)
    default: {
      if (typeof actual !== 'number' || typeof value !== 'number') return false
      if (op === 'lt') return actual < value
      if (op === 'le') return actual <= value
      if (op === 'gt') return actual > value
      return actual >= value
    }
  }
}

function parseRule (reader: NodeReader, node: unknown, id: string): AllowRule {
  const fields = reader.map(node, `rule ${id}`, RULE_KEYS)
  const names = (key: string, pattern: RegExp, what: string): Set<string> => {
    const field = fields.get(key)
    if (field === undefined) return new Set()
    const items = reader.seq(field.value, `'${key}' in ${id}`, NAMES_PER_RULE_MAX)
    return new Set(items.map((item) => reader.string(item, what, pattern)))
  }
  const orgs = names('orgs', ORG_NAME, 'organisation name')
  const peers = new Set([...names('peers', PEER_KEY, 'peer key (64 hex characters)')].map((k) => k.toLowerCase()))
  if (orgs.size === 0 && peers.size === 0) reader.fail(node, `rule ${id} must name at least one org or peer`)
  const rule: AllowRule = { id, orgs, peers, rateLimit: {}, when: [] }
  const rateLimit = fields.get('rateLimit')
  if (rateLimit !== undefined) {
    const limits = reader.map(rateLimit.value, `'rateLimit' in ${id}`, ['perPeerPerMinute', 'perOrgPerMinute'])
    for (const [key, { value }] of limits) {
      rule.rateLimit[key as 'perPeerPerMinute'] = reader.integer(value, `'${key}'`, 1, PER_MINUTE_MAX)
    }
  }
  const maxPayloadBytes = fields.get('maxPayloadBytes')
  if (maxPayloadBytes !== undefined) {
    rule.maxPayloadBytes = reader.integer(maxPayloadBytes.value, "'maxPayloadBytes'", 0, PAYLOAD_BYTES_LIMIT_MAX)
  }
  const minTrust = fields.get('minTrust')
  if (minTrust !== undefined) rule.minTrust = reader.number(minTrust.value, "'minTrust'", 0, 1)
  const when = fields.get('when')
  if (when !== undefined) {
    rule.when = reader.seq(when.value, `'when' in ${id}`, CONDITIONS_PER_RULE_MAX).map((c) => parseCondition(reader, c))
  }
  return rule
}

function parseCondition (reader: NodeReader, node: unknown): Condition {
  const fields = reader.map(node, 'a condition', ['field', 'op', 'value'])
  const field = fields.get('field')
  const op = fields.get('op')
  const value = fields.get('value')
  if (field === undefined || op === undefined || value === undefined) {
    reader.fail(node, "a condition needs 'field', 'op' and 'value'")
  }
  const opName = reader.string(op.value, "'op'")
  if (!OPS.has(opName)) reader.fail(op.value, `unknown op '${opName}' (ops: ${[...OPS].join(', ')})`)
  const path = reader.string(field.value, "'field' (a dotted path)", FIELD_PATH)
  const condition: Condition = { field: path, op: opName as ConditionOp, value: null }
  if (opName === 'in') {
    condition.value = reader.seq(value.value, "'value' of op in", IN_VALUES_MAX).map((v) => reader.scalar(v))
  } else if (opName === 'eq' || opName === 'ne') {
    condition.value = reader.scalar(value.value)
  } else {
    condition.value = reader.number(value.value, `'value' of op ${opName}`, -Number.MAX_VALUE, Number.MAX_VALUE)
  }
  return condition
}

function isNullScalar (node: unknown): boolean {
  return isScalar(node) && node.value === null
}

interface Field {
  key: Node
  value: unknown
}

// Reads the YAML node tree (not plain JS), so every rejection can name its line.
class NodeReader {
  constructor (readonly source: string, readonly lineCounter: LineCounter) {}

  lineAt (offset: number): number {
    return Math.max(1, this.lineCounter.linePos(offset).line)
  }

  fail (node: unknown, reason: string): never {
    const offset = isNode(node) && node.range !== undefined && node.range !== null ? node.range[0] : 0
    throw new PolicyError(this.source, this.lineAt(offset), reason)
  }

  entries (node: unknown, what: string, entriesMax: number): Array<Field & { name: string }> {
    this.#noAlias(node)
    if (!isMap(node)) this.fail(node, `${what} must be a mapping`)
    if (node.items.length > entriesMax) this.fail(node, `${what} has more than ${entriesMax} entries`)
    return node.items.map((pair) => {
      const key = pair.key
      if (!isScalar(key) || typeof key.value !== 'string') this.fail(key ?? node, `${what} has a key that is not a string`)
      this.#noAlias(pair.value)
      return { name: key.value, key, value: pair.value }
    })
  }

  map (node: unknown, what: string, keys: readonly string[]): Map<string, Field> {
    const out = new Map<string, Field>()
    for (const { name, key, value } of this.entries(node, what, Infinity)) {
      if (!keys.includes(name)) this.fail(key, `unknown key '${name}' in ${what} (allowed: ${keys.join(', ')})`)
      out.set(name, { key, value })
    }
    return out
  }

  seq (node: unknown, what: string, itemsMax: number): unknown[] {
    this.#noAlias(node)
    if (!isSeq(node)) this.fail(node, `${what} must be a list`)
    if (node.items.length > itemsMax) this.fail(node, `${what} has more than ${itemsMax} items`)
    for (const item of node.items) this.#noAlias(item)
    return node.items
  }

  string (node: unknown, what: string, pattern?: RegExp): string {
    if (!isScalar(node) || typeof node.value !== 'string') this.fail(node, `${what} must be a string`)
    if (pattern !== undefined && !pattern.test(node.value)) {
      this.fail(node, `invalid ${what} '${node.value.slice(0, 80)}' (must match ${pattern.source})`)
    }
    return node.value
  }

  number (node: unknown, what: string, min: number, max: number): number {
    if (!isScalar(node) || typeof node.value !== 'number' || !Number.isFinite(node.value)) {
      this.fail(node, `${what} must be a number`)
    }
    if (node.value < min || node.value > max) this.fail(node, `${what} must be in [${min}, ${max}]`)
    return node.value
  }

  integer (node: unknown, what: string, min: number, max: number): number {
    const value = this.number(node, what, min, max)
    if (!Number.isInteger(value)) this.fail(node, `${what} must be an integer`)
    return value
  }

  scalar (node: unknown): Scalar {
    const value = isScalar(node) ? node.value : undefined
    const ok = value === null || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value)) ||
      (typeof value === 'string' && value.length <= STRING_VALUE_LENGTH_MAX)
    if (!ok) {
      this.fail(node, `a condition value must be a string (up to ${STRING_VALUE_LENGTH_MAX} characters), number, boolean or null`)
    }
    return value as Scalar
  }

  #noAlias (node: unknown): void {
    if (isAlias(node)) this.fail(node, 'YAML aliases are not allowed in a policy')
  }
}

import assert from 'node:assert/strict'
import { describe, it } from 'mocha'
import { Policy, PolicyError, DEFAULT_DENY, type DenyCause, type PolicyRequest } from '../../../node/gate/policy.js'

const PEER = 'ab'.repeat(32)
const OTHER = 'cd'.repeat(32)
const POLICY = `# example
capabilities:
  summarize:
    allow:
      - orgs: [acme, globex]
        rateLimit: { perPeerPerMinute: 3, perOrgPerMinute: 5 }
        maxPayloadBytes: 1000
        minTrust: 0.4
        when:
          - { field: amount, op: le, value: 1000 }
          - { field: meta.kind, op: in, value: [short, long] }
      - peers: [${OTHER.toUpperCase()}]
  translate:
    allow:
      - orgs: [acme]
        when: [{ field: items.1.lang, op: eq, value: fr }]
`

function request (overrides: Partial<PolicyRequest> = {}): PolicyRequest {
  return { peer: PEER, org: 'acme', capability: 'summarize', payload: { amount: 10, meta: { kind: 'short' } }, payloadBytes: 100, ...overrides }
}

function parseError (text: string): PolicyError {
  try {
    Policy.parse(text, 'p.yaml')
  } catch (err) {
    assert.ok(err instanceof PolicyError)
    assert.equal(err.code, 'policy-invalid')
    assert.equal(err.message, `p.yaml:${err.line}: ${err.reason}`)
    return err
  }
  assert.fail(`parsed: ${text}`)
}

describe('Policy.parse', () => {
  it('reads capabilities and rules from YAML and the same policy from JSON', () => {
    const policy = Policy.parse(POLICY, 'p.yaml')
    assert.equal(policy.capabilityCount, 2)
    assert.equal(policy.ruleCount, 3)
    const [first, second] = policy.rules('summarize')
    assert.deepEqual([...first!.orgs], ['acme', 'globex'])
    assert.deepEqual(first!.rateLimit, { perPeerPerMinute: 3, perOrgPerMinute: 5 })
    assert.equal(first!.maxPayloadBytes, 1000)
    assert.equal(first!.minTrust, 0.4)
    assert.deepEqual(first!.when, [{ field: 'amount', op: 'le', value: 1000 }, { field: 'meta.kind', op: 'in', value: ['short', 'long'] }])
    assert.deepEqual([...second!.peers], [OTHER], 'peer keys are normalised to lowercase')

    const json = JSON.stringify({ capabilities: { summarize: { allow: [{ orgs: ['acme'], minTrust: 0.4, when: [{ field: 'a', op: 'gt', value: 1 }] }] } } })
    const fromJson = Policy.parse(json, 'p.json')
    assert.equal(fromJson.ruleCount, 1)
    assert.deepEqual(fromJson.rules('summarize')[0]!.when, [{ field: 'a', op: 'gt', value: 1 }])
  })

  it('accepts an empty file and empty capabilities as deny-all', () => {
    for (const text of ['', '# nothing\n', 'capabilities:\n', 'capabilities: {}\n']) {
      const policy = Policy.parse(text, 'p.yaml')
      assert.equal(policy.ruleCount, 0)
      assert.equal(policy.decide(request(), { nowMs: 0, trust: 1 }).rule, DEFAULT_DENY)
    }
  })

  const cases: Array<[string, string, number, RegExp]> = [
    ['unknown top-level key', 'capabilities: {}\nversion: 2\n', 2, /unknown key 'version'/],
    ['unknown rule key', 'capabilities:\n  s:\n    allow:\n      - orgs: [a]\n        minTrsut: 0.5\n', 5, /unknown key 'minTrsut'.*allowed: orgs, peers/],
    ['unknown capability key', 'capabilities:\n  s:\n    deny: []\n', 3, /unknown key 'deny'/],
    ['bad op', 'capabilities:\n  s:\n    allow:\n      - orgs: [a]\n        when:\n          - { field: x, op: like, value: 1 }\n', 6, /unknown op 'like'/],
    ['bad peer key', 'capabilities:\n  s:\n    allow:\n      - peers:\n          - abc\n', 5, /peer key/],
    ['wrong type for orgs', 'capabilities:\n  s:\n    allow:\n      - orgs: acme\n', 4, /'orgs' in s.allow\[0\] must be a list/],
    ['rule naming nobody', 'capabilities:\n  s:\n    allow:\n      - minTrust: 0.5\n', 4, /at least one org or peer/],
    ['minTrust out of range', 'capabilities:\n  s:\n    allow:\n      - orgs: [a]\n        minTrust: 1.5\n', 5, /'minTrust' must be in \[0, 1\]/],
    ['non-integer rate', 'capabilities:\n  s:\n    allow:\n      - orgs: [a]\n        rateLimit: { perPeerPerMinute: 1.5 }\n', 5, /must be an integer/],
    ['zero rate', 'capabilities:\n  s:\n    allow:\n      - orgs: [a]\n        rateLimit: { perOrgPerMinute: 0 }\n', 5, /perOrgPerMinute/],
    ['string payload limit', 'capabilities:\n  s:\n    allow:\n      - orgs: [a]\n        maxPayloadBytes: "64k"\n', 5, /must be a number/],
    ['non-numeric lt value', 'capabilities:\n  s:\n    allow:\n      - orgs: [a]\n        when: [{ field: x, op: lt, value: abc }]\n', 5, /'value' of op lt must be a number/],
    ['in without a list', 'capabilities:\n  s:\n    allow:\n      - orgs: [a]\n        when: [{ field: x, op: in, value: abc }]\n', 5, /must be a list/],
    ['condition missing value', 'capabilities:\n  s:\n    allow:\n      - orgs: [a]\n        when: [{ field: x, op: eq }]\n', 5, /needs 'field', 'op' and 'value'/],
    ['bad field path', 'capabilities:\n  s:\n    allow:\n      - orgs: [a]\n        when: [{ field: "a..b", op: eq, value: 1 }]\n', 5, /dotted path/],
    ['bad capability name', 'capabilities:\n  Bad Name:\n    allow: []\n', 2, /capability name/],
    ['duplicate key', 'capabilities:\n  s:\n    allow: []\n  s:\n    allow: []\n', 4, /unique/],
    ['YAML syntax error', 'capabilities:\n  s: [\n', 3, /.+/],
    ['alias', 'capabilities:\n  s:\n    allow:\n      - orgs: &o [a]\n      - orgs: *o\n', 5, /aliases are not allowed/],
    ['top level list', '- a\n', 1, /must be a mapping/],
    ['JSON wrong type', '{\n  "capabilities": {\n    "s": {\n      "allow": [{ "orgs": ["a"], "minTrust": "high" }]\n    }\n  }\n}\n', 4, /'minTrust' must be a number/]
  ]
  for (const [name, text, line, reason] of cases) {
    it(`rejects ${name} with its line`, () => {
      const err = parseError(text)
      assert.match(err.reason, reason)
      assert.equal(err.line, line)
    })
  }

  it('rejects a policy over the size bound', () => {
    const err = parseError('#'.repeat(1024 * 1024 + 1))
    assert.match(err.reason, /larger than/)
  })

  it('rejects deep nesting before yaml recurses into it, not counting brackets in strings', () => {
    assert.equal(parseError('capabilities:\n  s: ' + '['.repeat(200_000)).line, 2)
    assert.match(parseError('{"capabilities":\n' + '{"a":'.repeat(100_000)).reason, /nests deeper than 32/)
    const stairs = Array.from({ length: 300 }, (_, i) => ' '.repeat(i + 1) + 'b:').join('\n')
    assert.match(parseError('capabilities:\n' + stairs).reason, /indented too deeply/)
    const quoted = 'capabilities:\n  s:\n    allow:\n      - orgs: [a]\n        when: [{ field: x, op: eq, value: "' +
      '['.repeat(100) + '" }]  # ' + '{'.repeat(100) + '\n'
    assert.equal(Policy.parse(quoted, 'p.yaml').rules('s')[0]!.when[0]!.value, '['.repeat(100))
  })
})

describe('Policy.decide', () => {
  const ctx = { nowMs: 0, trust: 0.5 }

  it('allows a request that a rule names and every limit admits', () => {
    const decision = Policy.parse(POLICY, 'p.yaml').decide(request(), ctx)
    assert.equal(decision.decision, 'allow')
    assert.equal(decision.cause, undefined)
    assert.equal(decision.rule, 'summarize.allow[0]')
  })

  it('denies by default: unknown capability, unnamed requester, empty policy', () => {
    const policy = Policy.parse(POLICY, 'p.yaml')
    for (const [req, reason] of [
      [request({ capability: 'delete-everything' }), /no rule allows capability 'delete-everything'/],
      [request({ org: 'initech' }), /named by none of the 2 rule\(s\)/]
    ] as const) {
      const decision = policy.decide(req, ctx)
      assert.deepEqual([decision.decision, decision.rule, decision.cause], ['deny', DEFAULT_DENY, 'no-rule'])
      assert.match(decision.reason, reason)
    }
    assert.equal(Policy.empty().decide(request(), { nowMs: 0, trust: 1 }).decision, 'deny')
    const long = policy.decide(request({ org: 'o'.repeat(100_000), capability: 'c'.repeat(100_000) }), ctx)
    assert.ok(long.reason.length < 300, 'names from the wire are clipped in reasons')
  })

  it('names the rule and the limit that failed', () => {
    const policy = Policy.parse(POLICY, 'p.yaml')
    const failures: Array<[Partial<PolicyRequest>, number, DenyCause, RegExp]> = [
      [{ payloadBytes: 1001 }, 0.5, 'payload-too-large', /payload of 1001 bytes exceeds maxPayloadBytes 1000/],
      [{}, 0.39, 'low-trust', /trust 0.390 is below minTrust 0.4/],
      [{ payload: { amount: 1001, meta: { kind: 'short' } } }, 0.5, 'condition', /'amount' = 1001 fails le 1000/],
      [{ payload: { amount: '10', meta: { kind: 'short' } } }, 0.5, 'condition', /'amount' = "10" fails le/],
      [{ payload: { meta: { kind: 'short' } } }, 0.5, 'condition', /'amount' is missing/],
      [{ payload: { amount: 10, meta: { kind: 'epic' } } }, 0.5, 'condition', /'meta.kind' = "epic" fails in/],
      [{ payload: { amount: 10, meta: 'short' } }, 0.5, 'condition', /'meta.kind' is missing/],
      [{ payload: 'not an object' }, 0.5, 'condition', /'amount' is missing/],
      [{ payload: null }, 0.5, 'condition', /'amount' is missing/]
    ]
    for (const [overrides, trust, cause, reason] of failures) {
      const decision = policy.decide(request(overrides), { nowMs: 0, trust })
      assert.deepEqual([decision.decision, decision.rule, decision.cause], ['deny', 'summarize.allow[0]', cause], JSON.stringify(overrides))
      assert.match(decision.reason, reason)
    }
  })

  it('tries later rules when an earlier one does not admit the request', () => {
    const policy = Policy.parse(POLICY, 'p.yaml')
    const decision = policy.decide(request({ peer: OTHER, org: 'acme', payloadBytes: 5000 }), ctx)
    assert.deepEqual([decision.decision, decision.rule], ['allow', 'summarize.allow[1]'])
  })

  it('reads array elements by index and does not follow inherited properties', () => {
    const policy = Policy.parse(POLICY + '  proto:\n    allow:\n      - orgs: [acme]\n        when: [{ field: constructor, op: ne, value: 1 }]\n', 'p.yaml')
    const translate = (payload: unknown): string => policy.decide(request({ capability: 'translate', payload }), ctx).decision
    assert.equal(translate({ items: [{ lang: 'de' }, { lang: 'fr' }] }), 'allow')
    assert.equal(translate({ items: [{ lang: 'fr' }, { lang: 'de' }] }), 'deny')
    assert.equal(translate({ items: { 1: { lang: 'fr' } } }), 'allow', 'an object with key "1" is a map, not an array')
    assert.equal(translate({ items: [{ lang: 'fr' }] }), 'deny')
    assert.equal(policy.decide(request({ capability: 'proto', payload: {} }), ctx).decision, 'deny')
  })

  it('rate-limits per peer and per org, consuming tokens only for allowed requests', () => {
    const policy = Policy.parse(POLICY, 'p.yaml')
    const peer2 = 'ef'.repeat(32)
    // Denied requests (too large) take no tokens.
    for (let i = 0; i < 10; i++) assert.equal(policy.decide(request({ payloadBytes: 5000 }), ctx).decision, 'deny')
    const run = (peer: string, nowMs: number): string => policy.decide(request({ peer }), { nowMs, trust: 0.5 }).decision
    assert.deepEqual([run(PEER, 0), run(PEER, 0), run(PEER, 0)], ['allow', 'allow', 'allow'])
    const limited = policy.decide(request(), ctx)
    assert.deepEqual([limited.decision, limited.rule, limited.cause], ['deny', 'summarize.allow[0]', 'rate-limit'])
    assert.match(limited.reason, /perPeerPerMinute exceeded; retry after 20000 ms/)
    // A second peer of the same org has its own peer bucket but shares the org's 5 per minute.
    assert.deepEqual([run(peer2, 0), run(peer2, 0)], ['allow', 'allow'])
    const orgLimited = policy.decide(request({ peer: peer2 }), ctx)
    assert.match(orgLimited.reason, /perOrgPerMinute exceeded/)
    // Refill: one peer token every 20 s, one org token every 12 s.
    assert.equal(run(PEER, 11_999), 'deny')
    assert.equal(run(PEER, 20_000), 'allow')
    assert.equal(run(PEER, 20_001), 'deny')
  })
})

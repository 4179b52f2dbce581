import { TrustBook, TRUST_EVENT_TYPES } from '../membership/trust.js'
import { Policy, type PolicyRequest } from '../node/gate/policy.js'
import { round, writeResult } from './stats.js'

// Hot-path costs of authorization: Policy.decide() (a request per inbound call) and
// TrustBook.record()/score() (an event per inbound message), plus parsing a large policy file.
// Beside them, the reference: JSON.parse of the same request payload, a floor every request pays.
// Usage: tsx bench/policy-trust.ts [--count 200000]

const args = process.argv.slice(2)
const at = args.indexOf('--count')
const count = at === -1 ? 200_000 : Number(args[at + 1])
const peers = Array.from({ length: 1000 }, (_, i) => i.toString(16).padStart(64, '0'))

function opsPerSecond (op: (i: number) => void): number {
  for (let i = 0; i < Math.min(count, 10_000); i++) op(i) // warm up
  const t0 = performance.now()
  for (let i = 0; i < count; i++) op(i)
  return round(count / ((performance.now() - t0) / 1000), 0)
}

const rules = (i: number): string => `      - orgs: [org-${i}]
        rateLimit: { perPeerPerMinute: 600000, perOrgPerMinute: 1000000 }
        maxPayloadBytes: 65536
        minTrust: 0.3
        when: [{ field: job.amount, op: le, value: 1000 }, { field: job.kind, op: in, value: [a, b, c] }]
`
const policyText = 'capabilities:\n' + Array.from({ length: 100 }, (_, c) =>
  `  cap-${c}:\n    allow:\n` + Array.from({ length: 20 }, (_, r) => rules(r)).join('')).join('')
let t0 = performance.now()
const policy = Policy.parse(policyText, 'bench.yaml')
const parseMs = round(performance.now() - t0)

const payloadText = JSON.stringify({ job: { amount: 10, kind: 'b', text: 'x'.repeat(200) } })
const payload: unknown = JSON.parse(payloadText)
const request = (i: number): PolicyRequest => ({
  peer: peers[i % peers.length]!, org: `org-${i % 20}`, capability: `cap-${i % 100}`, payload, payloadBytes: payloadText.length
})
let allowed = 0
const decidePerSecond = opsPerSecond((i) => {
  if (policy.decide(request(i), { nowMs: i, trust: 0.5 }).decision === 'allow') allowed++
})
const denyPerSecond = opsPerSecond((i) => policy.decide({ ...request(i), org: 'nobody' }, { nowMs: i, trust: 0.5 }))
const jsonParsePerSecond = opsPerSecond(() => JSON.parse(payloadText))

const book = new TrustBook()
const recordPerSecond = opsPerSecond((i) => book.record(peers[i % peers.length]!, TRUST_EVENT_TYPES[i % 2]!, i))
const scorePerSecond = opsPerSecond((i) => book.score(peers[i % peers.length]!, count + i))
const full = new TrustBook({ peersMax: 10_000 })
for (let i = 0; i < 10_000; i++) full.record(i.toString(16).padStart(64, '0'), 'valid-message', 0)
t0 = performance.now()
const evictions = 1000
for (let i = 0; i < evictions; i++) full.record((1e6 + i).toString(16).padStart(64, '0'), 'valid-message', 1)
const evictionUs = round((performance.now() - t0) * 1000 / evictions)

const result = {
  count,
  policy: { capabilities: policy.capabilityCount, rules: policy.ruleCount, textBytes: policyText.length, parseMs },
  decidePerSecond,
  decideAllowedFraction: round(allowed / (count + Math.min(count, 10_000)), 3),
  denyPerSecond,
  reference: { jsonParsePayloadPerSecond: jsonParsePerSecond, payloadBytes: payloadText.length },
  trust: { recordPerSecond, scorePerSecond, evictionUsAt10kPeers: evictionUs }
}
console.log(`policy: ${result.policy.rules} rules (${result.policy.textBytes} bytes) parsed in ${parseMs} ms`)
console.log(`decide: ${decidePerSecond}/s allow path, ${denyPerSecond}/s default-deny; reference JSON.parse(payload): ${jsonParsePerSecond}/s`)
console.log(`trust: record ${recordPerSecond}/s, score ${scorePerSecond}/s, record with eviction at 10k peers ${evictionUs} µs`)
console.log(`wrote ${await writeResult('policy-trust', result)}`)

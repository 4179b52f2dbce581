import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createSanitizer } from '../sanitize/index.js'
import { Prng } from '../simulations/world/prng.js'
import { round, writeResult } from './stats.js'

// Sanitizer throughput in MB/s of JSON on one core, on a deterministic corpus of business records
// (orders, customers, events) where ~2% of the string values are sensitive (drawn from the labelled
// corpus of test/sanitize). Reference, same data, same run: JSON.parse + JSON.stringify.
// Usage: npm run bench:sanitize [-- --mb 16 --rounds 5 --seed 7]

const args = process.argv.slice(2)
const option = (name: string, fallback: number): number => {
  const at = args.indexOf(name)
  return at === -1 ? fallback : Number(args[at + 1])
}
const corpusBytesTarget = option('--mb', 16) * 1e6
const rounds = option('--rounds', 5)
const prng = new Prng(option('--seed', 7))
const SENSITIVE_PERCENT = 2
const TARGET_MB_PER_SECOND = 50

const corpusPath = join(dirname(fileURLToPath(import.meta.url)), '..', 'test', 'sanitize', 'corpus', 'corpus.jsonl')
const sensitiveTexts = readFileSync(corpusPath, 'utf8').trim().split('\n')
  .map((line) => JSON.parse(line) as { text: string, expected: unknown[] })
  .filter((line) => line.expected.length > 0)
  .map((line) => line.text)

const WORDS = ['blue', 'widget', 'premium', 'cable', 'adapter', 'steel', 'organic', 'coffee', 'deluxe', 'pack',
  'monthly', 'subscription', 'renewal', 'express', 'shipping', 'warehouse', 'Berlin', 'Lyon', 'Austin', 'Osaka']
const STATUSES = ['pending', 'paid', 'shipped', 'delivered', 'refunded', 'cancelled']

/** A business string, or (2% of the time) a line from the labelled corpus with a finding in it. */
function text (words: number): string {
  if (prng.chance(SENSITIVE_PERCENT, 100)) return prng.pick(sensitiveTexts)
  return Array.from({ length: words }, () => prng.pick(WORDS)).join(' ')
}

function isoTime (): string {
  return new Date(Date.UTC(2024, 0, 1) + prng.intInclusive(0, 3e10)).toISOString()
}

function order (index: number): unknown {
  return {
    id: `ord_${index.toString(36).padStart(8, '0')}`,
    orderNumber: `ORD-2024-${String(index).padStart(6, '0')}`,
    status: prng.pick(STATUSES),
    createdAt: isoTime(),
    updatedAtMs: 1_700_000_000_000 + prng.intInclusive(0, 1e10),
    customer: { id: prng.intInclusive(1, 1e6), name: text(2), city: prng.pick(WORDS), note: text(4) },
    items: Array.from({ length: prng.intInclusive(1, 4) }, (_, item) => ({
      sku: `SKU-${prng.intInclusive(1000, 9999)}-${item}`,
      title: text(3),
      quantity: prng.intInclusive(1, 12),
      unitPrice: prng.intInclusive(100, 99999) / 100,
      tags: [prng.pick(WORDS), prng.pick(WORDS)]
    })),
    total: { amount: prng.intInclusive(100, 999999) / 100, currency: prng.pick(['EUR', 'USD', 'GBP']) },
    shipping: { carrier: prng.pick(['DHL', 'UPS', 'FedEx']), tracking: `1Z${prng.intInclusive(1e8, 9e8)}`, eta: isoTime().slice(0, 10) },
    client: { version: `${prng.intInclusive(1, 9)}.${prng.intInclusive(0, 20)}.${prng.intInclusive(0, 99)}`, comment: text(8) },
    flags: { gift: prng.chance(1, 5), priority: prng.chance(1, 10) }
  }
}

const records: unknown[] = []
let corpusBytes = 2
while (corpusBytes < corpusBytesTarget) {
  const record = order(records.length)
  records.push(record)
  corpusBytes += JSON.stringify(record).length + 1
}
const json = JSON.stringify(records)
const megabytes = Buffer.byteLength(json) / 1e6
const parsed: unknown = JSON.parse(json)
const sanitizer = createSanitizer({ modes: { 'private-key': 'mask' }, nodesMax: 50_000_000 })

/** Best of `rounds` timings (the least disturbed by the other processes on a shared machine). */
function mbPerSecond (work: () => unknown, size = megabytes): number {
  let secondsBest = Infinity
  for (let round = 0; round < rounds; round++) {
    const startMs = performance.now()
    work()
    secondsBest = Math.min(secondsBest, (performance.now() - startMs) / 1000)
  }
  return size / secondsBest
}

// Worst case for throughput: every string is a corpus line with findings in it.
const dense: unknown = sensitiveTexts.map((text) => ({ text }))
const denseMegabytes = Buffer.byteLength(JSON.stringify(dense)) / 1e6
const reference = mbPerSecond(() => JSON.stringify(JSON.parse(json)))
const sanitizeOnly = mbPerSecond(() => sanitizer.sanitize(parsed))
const endToEnd = mbPerSecond(() => JSON.stringify(sanitizer.sanitize(JSON.parse(json)).value))
const denseOnly = mbPerSecond(() => sanitizer.sanitize(dense), denseMegabytes)
const report = sanitizer.sanitize(parsed).report

const result = {
  corpus: { megabytes: round(megabytes), records: records.length, sensitivePercent: SENSITIVE_PERCENT },
  rounds,
  mbPerSecond: {
    sanitize: round(sanitizeOnly, 1),
    parseSanitizeStringify: round(endToEnd, 1),
    referenceParseStringify: round(reference, 1),
    sanitizeAllSensitive: round(denseOnly, 1)
  },
  sanitizeVsReferenceRatio: round(sanitizeOnly / reference, 3),
  targetMbPerSecond: TARGET_MB_PER_SECOND,
  meetsTarget: sanitizeOnly >= TARGET_MB_PER_SECOND,
  redactions: report.redactions
}
const path = await writeResult('sanitize', result)
console.log(`corpus ${result.corpus.megabytes} MB, ${records.length} records, ~${SENSITIVE_PERCENT}% sensitive strings`)
console.log(`sanitize (parsed value)          ${result.mbPerSecond.sanitize} MB/s  (target >= ${TARGET_MB_PER_SECOND})`)
console.log(`parse + sanitize + stringify     ${result.mbPerSecond.parseSanitizeStringify} MB/s`)
console.log(`reference JSON.parse + stringify ${result.mbPerSecond.referenceParseStringify} MB/s`)
console.log(`ratio sanitize / reference       ${result.sanitizeVsReferenceRatio}`)
console.log(`sanitize, every string sensitive ${result.mbPerSecond.sanitizeAllSensitive} MB/s (${sensitiveTexts.length} corpus lines)`)
console.log(`redactions ${JSON.stringify(report.redactions)}`)
console.log(`wrote ${path}`)

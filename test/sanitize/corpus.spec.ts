import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CATEGORIES, createSanitizer, detectSpans, type Category } from '../../sanitize/index.js'

// Precision and recall of every category on the labelled corpus (corpus/generate.ts): a finding counts
// only with the right category and exactly the labelled text.

const RATIO_MIN = 0.99
const corpusDir = join(dirname(fileURLToPath(import.meta.url)), 'corpus')

interface Tally { truePositives: number, falsePositives: number, falseNegatives: number, misses: string[] }

function readLines<T> (name: string): T[] {
  return readFileSync(join(corpusDir, name), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as T)
}

function emptyTallies (): Map<Category, Tally> {
  return new Map(CATEGORIES.map((category) => [category, { truePositives: 0, falsePositives: 0, falseNegatives: 0, misses: [] }]))
}

/** Matches found against expected as multisets of "category\0text". */
function score (tallies: Map<Category, Tally>, expected: string[], found: string[], context: string): void {
  const unmatched = [...expected]
  for (const item of found) {
    const at = unmatched.indexOf(item)
    const tally = tallies.get(item.split('\u0000')[0] as Category)!
    if (at >= 0) {
      unmatched.splice(at, 1)
      tally.truePositives++
    } else {
      tally.falsePositives++
      tally.misses.push(`FP ${JSON.stringify(item.split('\u0000')[1])} in ${JSON.stringify(context)}`)
    }
  }
  for (const item of unmatched) {
    const tally = tallies.get(item.split('\u0000')[0] as Category)!
    tally.falseNegatives++
    tally.misses.push(`FN ${JSON.stringify(item.split('\u0000')[1])} in ${JSON.stringify(context)}`)
  }
}

function leafPaths (value: unknown, prefix: string, out: Map<string, unknown>): void {
  if (typeof value === 'object' && value !== null) {
    for (const [key, child] of Object.entries(value)) leafPaths(child, prefix === '' ? key : `${prefix}.${key}`, out)
  }
  out.set(prefix, value)
}

describe('sanitize corpus: precision and recall per category', () => {
  const tallies = emptyTallies()
  const textLines = readLines<{ text: string, expected: Array<{ category: Category, match: string }> }>('corpus.jsonl')
  const fieldLines = readLines<{ json: unknown, expected: Array<{ category: Category, path: string }> }>('fields.jsonl')

  before(() => {
    for (const line of textLines) {
      const found = detectSpans(line.text).map((span) => `${span.category}\u0000${line.text.slice(span.start, span.end)}`)
      score(tallies, line.expected.map((item) => `${item.category}\u0000${item.match}`), found, line.text)
    }
    const sanitizer = createSanitizer({ modes: { 'private-key': 'mask' } })
    for (const line of fieldLines) {
      const paths = new Map<string, unknown>()
      leafPaths(sanitizer.sanitize(line.json).value, '', paths)
      const found = [...paths].filter(([, value]) => value === '[REDACTED:sensitive-field]').map(([path]) => `sensitive-field\u0000${path}`)
      score(tallies, line.expected.map((item) => `${item.category}\u0000${item.path}`), found, JSON.stringify(line.json))
    }
    const rows = [...tallies].map(([category, t]) => ({
      category,
      positives: t.truePositives + t.falseNegatives,
      tp: t.truePositives,
      fp: t.falsePositives,
      fn: t.falseNegatives,
      precision: ratio(t.truePositives, t.truePositives + t.falsePositives),
      recall: ratio(t.truePositives, t.truePositives + t.falseNegatives)
    }))
    console.table(rows)
  })

  it('has at least 30 positives per category and 150 look-alikes', () => {
    for (const [category, tally] of tallies) {
      assert.ok(tally.truePositives + tally.falseNegatives >= 30, `${category} has too few positives`)
    }
    const negatives = textLines.filter((line) => line.expected.length === 0).length
    assert.ok(negatives >= 150, `only ${negatives} look-alikes`)
  })

  for (const category of CATEGORIES) {
    it(`${category}: precision and recall >= ${RATIO_MIN}`, () => {
      const tally = tallies.get(category)!
      const precision = ratio(tally.truePositives, tally.truePositives + tally.falsePositives)
      const recall = ratio(tally.truePositives, tally.truePositives + tally.falseNegatives)
      assert.ok(precision >= RATIO_MIN && recall >= RATIO_MIN,
        `${category}: precision ${precision}, recall ${recall}\n${tally.misses.slice(0, 20).join('\n')}`)
    })
  }
})

function ratio (numerator: number, denominator: number): number {
  return denominator === 0 ? 1 : Math.round((numerator / denominator) * 10000) / 10000
}

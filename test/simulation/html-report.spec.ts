import assert from 'node:assert/strict'
import { loadChartLibrary } from '../../node/cli/commands/simulate.js'
import type { FederationSimReport } from '../../simulations/federation/scenario.js'
import { faultTimeline, renderHtmlReport, type ChartLibrary, type FaultTimeline } from '../../simulations/report/html-report.js'
import { sampleReport } from '../helpers/sample-sim-report.js'

function embeddedData (page: string): { series: unknown, timeline: FaultTimeline, orgs: string[] } {
  const m = /<script type="application\/json" id="report-data">([^<]*)<\/script>/.exec(page)
  assert.ok(m !== null, 'no embedded report data')
  return JSON.parse(m[1]!)
}

describe('the HTML report', () => {
  let library: ChartLibrary
  before(async () => { library = await loadChartLibrary() })

  it('is one page holding the charting library, the data and the verdict', () => {
    const report = sampleReport()
    const page = renderHtmlReport(report, library)
    assert.ok(page.startsWith('<!doctype html>'))
    assert.ok(library.js.length > 10_000 && page.includes(library.js), 'uPlot is not inlined')
    assert.ok(page.includes(library.css), 'uPlot\'s CSS is not inlined')
    const data = embeddedData(page)
    assert.deepEqual(data.series, report.series)
    assert.deepEqual(data.orgs, ['alpha', 'bravo', 'charlie', 'delta'])
    assert.match(page, /class="verdict ok">OK: no invariant violated, seed 42</)
    for (const id of ['throughput', 'latency', 'view', 'boards', 'timeline']) assert.ok(page.includes(`id="chart-${id}"`), id)
    assert.ok(page.includes('<th>view changes</th><td>1</td>'))
    assert.ok(page.includes('4 orgs × 3 nodes'))
  })

  it('loads nothing from anywhere: no src or href to another place', () => {
    const page = renderHtmlReport(sampleReport(), library)
    assert.deepEqual(page.match(/<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=/gi), null)
    assert.doesNotMatch(page, /<link\b/i)
    assert.doesNotMatch(page, /(src|href)\s*=\s*["']?\s*(https?:)?\/\//i)
  })

  it('names the violated invariant and its seed, escaped', () => {
    const report = sampleReport({ ...sampleReport().scenario, seed: 1013 }, true)
    const page = renderHtmlReport(report, library)
    assert.ok(page.includes('VIOLATED: agreement, seed 1013'))
    assert.ok(page.includes('at seq 212 &#60;script&#62;'))
    // Scripts only where the page puts them: none opened, and none closed early, by the data.
    assert.equal(page.match(/<script\b/g)?.length, 3)
    assert.equal(page.match(/<\/script>/g)?.length, 3)
    assert.equal(embeddedData(page).timeline.violationMs, 24_000)
  })

  it('draws faults as intervals closed by their heal or restart, and instants as markers', () => {
    const report: FederationSimReport = { ...sampleReport(), events: [
      { tMs: 1000, kind: 'crash', node: 'alpha/2', detail: '' },
      { tMs: 2000, kind: 'partition-org', org: 'bravo', detail: '' },
      { tMs: 3000, kind: 'crash', node: 'charlie/0', detail: '' },
      { tMs: 4000, kind: 'restart', node: 'alpha/2', detail: '' },
      { tMs: 5000, kind: 'heal', org: 'bravo', detail: '' },
      { tMs: 6000, kind: 'view-change', detail: 'view 0 → 1' },
      { tMs: 7000, kind: 'partition-orgs', org: 'delta', detail: '' },
      { tMs: 8000, kind: 'heal', detail: 'partitions only: charlie/0 stays down' },
      { tMs: 9000, kind: 'partition-one-way', detail: '' },
      { tMs: 40_000, kind: 'leader', org: 'delta', node: 'delta/1', detail: 'after the safety phase' }
    ] }
    const timeline = faultTimeline(report)
    assert.equal(timeline.healedMs, 30_000)
    assert.deepEqual(timeline.bands.map((b) => [b.kind, b.fromMs, b.toMs]), [
      ['crash', 1000, 4000], ['partition-org', 2000, 5000], ['crash', 3000, 30_000], ['partition-orgs', 7000, 8000], ['partition-one-way', 9000, 30_000]
    ])
    assert.deepEqual(timeline.markers.map((m) => [timeline.lanes[m.lane], m.tMs]), [
      ['nodes down', 4000], ['clock / heal', 5000], ['pbft views', 6000], ['clock / heal', 8000], ['raft leaders', 40_000]
    ])
  })
})

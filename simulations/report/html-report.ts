import type { FederationSimReport, SimEvent } from '../federation/scenario.js'

// The report of one simulated run as ONE self-contained HTML page: the charting library (uPlot),
// the data and the drawing code are inline, so the page opens offline and can be mailed or attached
// to an issue. Pure: the caller passes the library's code in.

export interface ChartLibrary {
  js: string
  css: string
}

/** The fault timeline as drawn: lanes of intervals (partitions, nodes down) and instants. */
export interface FaultTimeline {
  lanes: string[]
  bands: Array<{ lane: number, fromMs: number, toMs: number, kind: SimEvent['kind'], label: string }>
  markers: Array<{ lane: number, tMs: number, kind: SimEvent['kind'], label: string }>
  /** End of the safety phase: from here on everything is healed. */
  healedMs: number
  violationMs?: number
}

const LANES = ['partitions', 'nodes down', 'raft leaders', 'pbft views', 'governance', 'clock / heal', 'violation']
const LANE_OF: Record<SimEvent['kind'], number> = {
  'partition-org': 0,
  'partition-orgs': 0,
  'partition-one-way': 0,
  'isolate-primary-host': 0,
  crash: 1,
  'kill-leader': 1,
  restart: 1,
  leader: 2,
  'view-change': 3,
  epoch: 4,
  'vote-admit': 4,
  'vote-revoke': 4,
  'clock-skew': 5,
  heal: 5,
  violation: 6
}
// Events that open an interval: a partition, closed by a heal of its target (or of everything); a
// node down, closed by its restart. The end of the safety phase, where the simulator heals
// everything, closes the rest.
const OPENS_BAND = new Set<SimEvent['kind']>(['partition-org', 'partition-orgs', 'partition-one-way', 'isolate-primary-host', 'crash', 'kill-leader'])
const PARTITION_LANE = LANE_OF['partition-org']
const DOWN_LANE = LANE_OF.crash
const EVENT_ROWS_MAX = 2000

export function faultTimeline (report: FederationSimReport): FaultTimeline {
  const healedMs = Math.min(report.scenario.durationMs, report.stats.simulatedMs)
  const timeline: FaultTimeline = { lanes: LANES, bands: [], markers: [], healedMs }
  const open: Array<{ band: FaultTimeline['bands'][number], target: string | undefined }> = []
  const close = (atMs: number, lane: number, matches: (target: string | undefined) => boolean): void => {
    for (let i = open.length - 1; i >= 0; i--) {
      const o = open[i]!
      if (o.band.lane !== lane || !matches(o.target)) continue
      o.band.toMs = Math.max(o.band.fromMs, Math.min(atMs, healedMs))
      open.splice(i, 1)
    }
  }
  for (const e of [...report.events].sort((a, b) => a.tMs - b.tMs)) {
    const lane = LANE_OF[e.kind]
    const target = e.node ?? e.org
    const label = `${formatSeconds(e.tMs)} ${e.kind}${target === undefined ? '' : ` ${target}`}: ${e.detail}`
    if (e.kind === 'heal') close(e.tMs, PARTITION_LANE, (t) => target === undefined || t === target || (t?.startsWith(`${target}/`) ?? false))
    if (e.kind === 'restart') close(e.tMs, DOWN_LANE, (t) => t === target)
    if (e.kind === 'violation') timeline.violationMs ??= e.tMs
    if (OPENS_BAND.has(e.kind) && e.tMs < healedMs) {
      const band = { lane, fromMs: e.tMs, toMs: healedMs, kind: e.kind, label }
      timeline.bands.push(band)
      open.push({ band, target })
    } else {
      timeline.markers.push({ lane, tMs: e.tMs, kind: e.kind, label })
    }
  }
  return timeline
}

export function renderHtmlReport (report: FederationSimReport, chart: ChartLibrary): string {
  const s = report.scenario
  const verdict = report.ok
    ? `<p class="verdict ok">OK: no invariant violated, seed ${s.seed}</p>`
    : `<p class="verdict failed">VIOLATED: ${escapeHtml(report.violation?.invariant ?? 'unknown invariant')}, seed ${s.seed}<br><span>${escapeHtml(report.violation?.message ?? '')}</span></p>`
  const data = { series: report.series, bucketMs: report.bucketMs, orgs: Object.keys(report.series[0]?.boards ?? {}), timeline: faultTimeline(report), endMs: report.stats.simulatedMs }
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fedmesh simulate: seed ${s.seed}, ${report.ok ? 'ok' : 'violated'}</title>
<style>${inlineCode(chart.css, 'style')}</style>
<style>${PAGE_CSS}</style>
</head>
<body>
<header>
<h1>fedmesh simulate: ${s.orgs} orgs × ${s.nodesPerOrg} nodes, seed ${s.seed}</h1>
${verdict}
<div class="tables">
${table('Scenario', scenarioRows(report))}
${table('Stats', statsRows(report))}
</div>
</header>
<main>
${CHARTS.map((c) => `<section><h2>${c.title}</h2><div id="chart-${c.id}" class="chart"></div></section>`).join('\n')}
<p class="detail">Shaded: <span class="key partition">partitions</span> <span class="key down">nodes down</span>; dashed green: end of the fault phase (all healed from there on); red line: the violation.</p>
<p id="event-detail" class="detail">Hover the timeline for an event's detail.</p>
<section><h2>Events${report.events.length > EVENT_ROWS_MAX ? ` (first ${EVENT_ROWS_MAX} of ${report.events.length})` : ''}</h2>
<table class="events"><thead><tr><th>t (s)</th><th>kind</th><th>org</th><th>node</th><th>detail</th></tr></thead><tbody>
${report.events.slice(0, EVENT_ROWS_MAX).map((e) => `<tr class="k-${e.kind}"><td>${formatSeconds(e.tMs)}</td><td>${e.kind}</td><td>${escapeHtml(e.org ?? '')}</td><td>${escapeHtml(e.node ?? '')}</td><td>${escapeHtml(e.detail)}</td></tr>`).join('\n')}
</tbody></table></section>
<details><summary>Trace (${report.trace.length} lines)</summary><pre>${escapeHtml(report.trace.join('\n'))}</pre></details>
</main>
<script type="application/json" id="report-data">${inlineJson(data)}</script>
<script>${inlineCode(chart.js, 'script')}</script>
<script>${PAGE_SCRIPT}</script>
</body>
</html>
`
}

const CHARTS = [
  { id: 'throughput', title: 'Throughput: cross-org tasks acknowledged per bucket' },
  { id: 'latency', title: 'Commit latency p50 / p99 (ms)' },
  { id: 'view', title: 'PBFT view' },
  { id: 'boards', title: 'Tasks on each org\'s board' },
  { id: 'timeline', title: 'Fault timeline' }
]

function scenarioRows (report: FederationSimReport): Array<[string, string]> {
  const s = report.scenario
  const n = s.network
  const byzantine = Object.entries(s.byzantine)
  return [
    ['federation', `${s.orgs} orgs × ${s.nodesPerOrg} nodes`],
    ['seed', String(s.seed)],
    ['phases', `${formatSeconds(s.durationMs)} s faults and workload, then ≤ ${formatSeconds(s.livenessMsMax)} s healed`],
    ['workload', `${s.workload.tasksPerSecond} tasks/s, ≤ ${s.workload.concurrency} in flight per client`],
    ['network', `intra-org ${n.intraOrgMs[0]}–${n.intraOrgMs[1]} ms, inter-org ${n.interOrgMs[0]}–${n.interOrgMs[1]} ms, drop ${n.dropPerMille}‰, duplicate ${n.duplicatePerMille}‰`],
    ['disk', `${s.diskMs[0]}–${s.diskMs[1]} ms per write`],
    ['faults', s.faults === 'random' ? 'random (drawn from the seed)' : s.faults.length === 0 ? 'none' : `${s.faults.length} scheduled`],
    ['byzantine', byzantine.length === 0 ? 'none' : byzantine.map(([org, kind]) => `${org}: ${kind}`).join(', ')]
  ]
}

function statsRows (report: FederationSimReport): Array<[string, string]> {
  const t = report.stats
  return [
    ['simulated', `${formatSeconds(t.simulatedMs)} s (wall ${(t.wallMs / 1000).toFixed(1)} s)`],
    ['tasks', `${t.acknowledged} acknowledged of ${t.proposed} proposed`],
    ['view changes', String(t.viewChanges)],
    ['leader changes', String(t.leaderChanges)],
    ['crashes', String(t.crashes)],
    ['partitions', String(t.partitions)],
    ['messages', `${t.messages} sent, ${t.dropped} dropped`]
  ]
}

function table (caption: string, rows: Array<[string, string]>): string {
  return `<table class="facts"><caption>${caption}</caption>${rows.map(([k, v]) => `<tr><th>${k}</th><td>${escapeHtml(v)}</td></tr>`).join('')}</table>`
}

function formatSeconds (ms: number): string {
  return (ms / 1000).toFixed(ms % 1000 === 0 ? 0 : ms % 100 === 0 ? 1 : 3)
}

function escapeHtml (text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

// Inside <script> or <style> only the closing tag can end the element early.
function inlineCode (code: string, tag: 'script' | 'style'): string {
  return code.replace(new RegExp(`</(${tag})`, 'gi'), '<\\/$1')
}

// JSON in a script element: `<` escaped, so no string in the data can close the element.
function inlineJson (value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c')
}

const PAGE_CSS = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 16px 24px; color: #222; max-width: 1180px; }
h1 { font-size: 20px; margin: 0 0 8px; }
h2 { font-size: 15px; margin: 12px 0 2px; }
.verdict { font-size: 16px; font-weight: 600; padding: 8px 12px; border-radius: 4px; margin: 8px 0; }
.verdict.ok { background: #e3f4e3; color: #1b5e20; }
.verdict.failed { background: #fde4e4; color: #b71c1c; }
.verdict span { font-weight: 400; }
.tables { display: flex; gap: 24px; flex-wrap: wrap; }
table.facts { border-collapse: collapse; }
table.facts caption { text-align: left; font-weight: 600; padding-bottom: 2px; }
table.facts th { text-align: left; font-weight: 500; color: #555; padding: 1px 12px 1px 0; vertical-align: top; }
table.events { border-collapse: collapse; font-size: 12px; width: 100%; }
table.events th, table.events td { text-align: left; padding: 1px 8px; border-bottom: 1px solid #eee; }
tr.k-violation td { color: #b71c1c; font-weight: 600; }
.detail { font-size: 12px; color: #555; min-height: 1.4em; margin: 2px 0; }
.key { padding: 0 6px; }
pre { font-size: 11px; max-height: 400px; overflow: auto; background: #f6f6f6; padding: 8px; }
`

// The drawing code, run in the page: one uPlot chart per panel, cursors in sync, fault intervals
// shaded behind every chart and the end of the safety phase and any violation marked.
const PAGE_SCRIPT = String.raw`
(function () {
  var data = JSON.parse(document.getElementById('report-data').textContent)
  var tl = data.timeline
  var COLORS = { partition: 'rgba(255,152,0,0.16)', down: 'rgba(229,57,53,0.14)' }
  var KIND_COLORS = {
    'partition-org': '#fb8c00', 'partition-orgs': '#fb8c00', 'partition-one-way': '#ffa726', 'isolate-primary-host': '#ef6c00',
    crash: '#e53935', 'kill-leader': '#c62828', restart: '#43a047', leader: '#1e88e5', 'view-change': '#8e24aa',
    epoch: '#00897b', 'vote-admit': '#00897b', 'vote-revoke': '#00897b', 'clock-skew': '#6d4c41', heal: '#43a047', violation: '#b71c1c'
  }
  var PALETTE = ['#1e88e5', '#e53935', '#43a047', '#fb8c00', '#8e24aa', '#00897b', '#6d4c41', '#3949ab', '#c0ca33', '#d81b60']
  var AXIS_SIZE = 90
  Object.keys(COLORS).forEach(function (k) { document.querySelector('.key.' + k).style.background = COLORS[k] })
  var xs = data.series.map(function (p) { return p.tMs / 1000 })
  if (xs.length === 0) xs = [0, data.endMs / 1000]
  var X_SCALE = { time: false, range: [0, Math.max(xs[xs.length - 1], data.endMs / 1000)] }
  function col (f) { return data.series.map(f) }

  function x (u, ms) { return u.valToPos(ms / 1000, 'x', true) }
  function vline (u, ms, color, dash) {
    var ctx = u.ctx, px = x(u, ms)
    ctx.save(); ctx.strokeStyle = color; ctx.lineWidth = 1.5 * devicePixelRatio; ctx.setLineDash(dash)
    ctx.beginPath(); ctx.moveTo(px, u.bbox.top); ctx.lineTo(px, u.bbox.top + u.bbox.height); ctx.stroke(); ctx.restore()
  }
  var shade = {
    hooks: {
      drawClear: [function (u) {
        var ctx = u.ctx
        ctx.save()
        tl.bands.forEach(function (b) {
          ctx.fillStyle = b.lane === tl.lanes.indexOf('partitions') ? COLORS.partition : COLORS.down
          var l = x(u, b.fromMs), r = Math.max(x(u, b.toMs), l + devicePixelRatio)
          ctx.fillRect(l, u.bbox.top, r - l, u.bbox.height)
        })
        ctx.restore()
      }],
      draw: [function (u) {
        vline(u, tl.healedMs, '#43a047', [6, 4])
        if (tl.violationMs !== undefined) vline(u, tl.violationMs, '#b71c1c', [])
      }]
    }
  }
  function width () { return Math.min(1160, document.body.clientWidth) }
  function chart (id, series, values, extra) {
    var opts = Object.assign({
      width: width(), height: 130,
      cursor: { sync: { key: 'sim' } },
      scales: { x: X_SCALE },
      axes: [{}, { size: AXIS_SIZE }],
      series: [{ label: 't (s)' }].concat(series),
      plugins: [shade]
    }, extra || {})
    return new uPlot(opts, [xs].concat(values), document.getElementById('chart-' + id))
  }
  var charts = []
  charts.push(chart('throughput', [{ label: 'acknowledged / ' + data.bucketMs + ' ms', stroke: '#1e88e5', fill: 'rgba(30,136,229,0.35)', paths: uPlot.paths.bars({ size: [0.9, 40] }), points: { show: false } }],
    [col(function (p) { return p.committed })]))
  charts.push(chart('latency', [
    { label: 'p50 ms', stroke: '#43a047', width: 1.5, points: { show: false } },
    { label: 'p99 ms', stroke: '#e53935', width: 1.5, points: { show: false } }
  ], [col(function (p) { return p.latencyP50Ms }), col(function (p) { return p.latencyP99Ms })]))
  charts.push(chart('view', [{ label: 'view', stroke: '#8e24aa', width: 2, paths: uPlot.paths.stepped({ align: 1 }), points: { show: false } }],
    [col(function (p) { return p.view })]))
  charts.push(chart('boards', data.orgs.map(function (org, i) { return { label: org, stroke: PALETTE[i % PALETTE.length], width: 1.5, points: { show: false } } }),
    data.orgs.map(function (org) { return col(function (p) { return p.boards[org] === undefined ? null : p.boards[org] }) })))

  // The timeline: one lane per kind of event, intervals as bars, instants as ticks.
  var lanes = tl.lanes.length
  var detail = document.getElementById('event-detail')
  charts.push(new uPlot({
    width: width(), height: 60 + lanes * 24,
    cursor: { sync: { key: 'sim' }, y: false, points: { show: false } },
    legend: { show: false },
    scales: { x: X_SCALE, y: { auto: false, range: [0, lanes] } },
    // y grows upwards: split i + 0.5 is the lane i-th from the bottom.
    axes: [{ label: 'simulated s' }, {
      size: AXIS_SIZE, grid: { show: false },
      splits: function () { return tl.lanes.map(function (_, i) { return i + 0.5 }) },
      values: function (u, splits) { return splits.map(function (s) { return tl.lanes[lanes - 1 - Math.floor(s)] }) }
    }],
    series: [{}, { scale: 'y', stroke: 'transparent', points: { show: false } }],
    hooks: {
      draw: [function (u) {
        var ctx = u.ctx, laneH = u.bbox.height / lanes
        function top (lane) { return u.bbox.top + lane * laneH }
        ctx.save()
        tl.bands.forEach(function (b) {
          ctx.fillStyle = KIND_COLORS[b.kind]
          var l = x(u, b.fromMs), r = Math.max(x(u, b.toMs), l + 2 * devicePixelRatio)
          ctx.fillRect(l, top(b.lane) + laneH * 0.2, r - l, laneH * 0.6)
        })
        tl.markers.forEach(function (m) {
          ctx.fillStyle = KIND_COLORS[m.kind]
          ctx.fillRect(x(u, m.tMs) - devicePixelRatio, top(m.lane) + laneH * 0.1, 2 * devicePixelRatio, laneH * 0.8)
        })
        ctx.restore()
        vline(u, tl.healedMs, '#43a047', [6, 4])
      }],
      setCursor: [function (u) {
        if (u.cursor.left === undefined || u.cursor.left < 0) return
        var t = u.posToVal(u.cursor.left, 'x') * 1000, best, bestD = Infinity
        var near = (u.posToVal(8, 'x') - u.posToVal(0, 'x')) * 1000
        tl.markers.concat(tl.bands.map(function (b) { return { tMs: b.fromMs, label: b.label } })).forEach(function (e) {
          var d = Math.abs(e.tMs - t)
          if (d < bestD) { bestD = d; best = e }
        })
        if (best !== undefined && bestD <= near) detail.textContent = best.label
      }]
    }
  }, [[xs[0], xs[xs.length - 1]], [null, null]], document.getElementById('chart-timeline')))
  window.addEventListener('resize', function () { charts.forEach(function (c) { c.setSize({ width: width(), height: c.height }) }) })
})()
`

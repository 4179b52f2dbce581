import 'uplot/dist/uPlot.min.css'
import './console.css'
import type { ConsoleView } from '../console-routes.js'
import type { ConsoleSample } from '../console-monitor.js'
import type { MemberView, NodeStatus } from '../../node.js'
import type { Task, TaskStatus } from '../../org/task-board.js'
import { LineChart } from './charts.js'
import { ago, badge, byId, clockTime, fill, h, shortKey, table } from './dom.js'

// The fedmesh web console: a login form for the admin API token (kept in this tab's
// sessionStorage, sent as a bearer token, never in a URL), then GET /v1/console every
// POLL_INTERVAL_MS, drawn section by section. Served by the node itself (node/api/console-routes.ts);
// bundled with uPlot by `npm run build`, so it needs nothing from the network.

type View = Omit<ConsoleView, 'node' | 'members'> & { node: NodeStatus, members: MemberView[] }

const TOKEN_KEY = 'fedmesh.apiToken'
const POLL_INTERVAL_MS = 2000
const SAMPLES_KEPT = 600
const BOARD_COLUMNS: TaskStatus[] = ['open', 'claimed', 'done']

let samples: ConsoleSample[] = []
let polling: number | undefined
let charts: { trust: LineChart, raft: LineChart, pbft: LineChart } | undefined

function showLogin (message?: string): void {
  if (polling !== undefined) window.clearTimeout(polling)
  polling = undefined
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'current-password', placeholder: 'admin API token', required: '' }) as HTMLInputElement
  const form = h('form', { id: 'login' },
    h('h1', {}, 'fedmesh console'),
    h('p', {}, 'Sign in with the node\'s admin API token: the content of ', h('code', {}, '<data-dir>/api.token'), ' (', h('code', {}, 'cat ~/.fedmesh/api.token'), ').'),
    input,
    h('button', { type: 'submit' }, 'Sign in'),
    message !== undefined ? h('p', { class: 'error', id: 'login-error' }, message) : null,
    h('p', { class: 'hint' }, 'The token stays in this tab (sessionStorage) and is sent only to this node.'))
  form.addEventListener('submit', (event) => {
    event.preventDefault()
    sessionStorage.setItem(TOKEN_KEY, input.value.trim())
    showConsole()
  })
  byId('app').replaceChildren(form)
  input.focus()
}

function showConsole (): void {
  samples = []
  const section = (id: string, title: string, ...extra: HTMLElement[]): HTMLElement =>
    h('section', { id: `${id}-section` }, h('h2', {}, title), ...extra, h('div', { id }))
  byId('app').replaceChildren(
    h('header', {},
      h('h1', {}, 'fedmesh console'),
      h('div', { id: 'identity' }),
      h('div', { id: 'updated' }, 'connecting…'),
      logoutButton()),
    h('div', { class: 'grid' },
      section('members', 'Members'),
      section('raft', 'Org Raft group', h('div', { id: 'raft-chart', class: 'chart' })),
      section('trust', 'Trust', h('div', { id: 'trust-chart', class: 'chart' })),
      section('federation', 'Federation', h('div', { id: 'pbft-chart', class: 'chart' })),
      section('tasks', 'Task board'),
      section('audit', 'Audit log')))
  charts = { trust: new LineChart('trust-chart', [0, 1]), raft: new LineChart('raft-chart'), pbft: new LineChart('pbft-chart') }
  void poll()
}

function logoutButton (): HTMLElement {
  const button = h('button', { id: 'logout', type: 'button' }, 'Sign out')
  button.addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY)
    showLogin()
  })
  return button
}

async function poll (): Promise<void> {
  const token = sessionStorage.getItem(TOKEN_KEY)
  if (token === null) return showLogin()
  try {
    const res = await fetch(`/v1/console?since=${samples.at(-1)?.tMs ?? 0}`, { headers: { authorization: `Bearer ${token}` }, cache: 'no-store' })
    if (res.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY)
      return showLogin('That token was refused: check <data-dir>/api.token.')
    }
    if (!res.ok) throw new Error(`${res.status} ${await res.text()}`)
    render(await res.json() as View)
    fill('updated', `updated ${clockTime(Date.now())}`)
    byId('updated').className = ''
  } catch (err) {
    fill('updated', `node not answering: ${(err as Error).message}`)
    byId('updated').className = 'error'
  }
  polling = window.setTimeout(() => { void poll() }, POLL_INTERVAL_MS)
}

function render (view: View): void {
  samples = [...samples, ...view.samples].slice(-SAMPLES_KEPT)
  const orgOf = new Map(view.members.map((m) => [m.key, m.org]))
  const n = view.node
  fill('identity', h('span', {}, 'node ', shortKey(n.key)), h('span', {}, 'org ', h('b', {}, n.org)), h('span', {}, `incarnation ${n.incarnation}`), h('span', {}, `up ${Math.round(n.uptimeMs / 1000)} s`))
  renderMembers(view)
  renderRaft(view)
  renderTrust(view, orgOf)
  renderFederation(view)
  renderTasks(view)
  renderAudit(view)
}

function renderMembers (view: View): void {
  const { raft } = view
  const role = (key: string): HTMLElement => key === raft.leader
    ? badge('leader', 'ok')
    : raft.voters.includes(key) ? badge('voter', 'plain') : raft.learners.includes(key) ? badge('learner', 'plain') : badge('—', 'muted')
  const counts = Object.entries(view.node.members).map(([state, count]) => `${count} ${state}`).join(', ')
  fill('members',
    h('p', { class: 'summary', id: 'members-summary' }, `${view.members.length} members: ${counts}`),
    table(['key', 'org', 'state', 'raft', 'incarnation', 'last heard', 'capabilities'], view.members.map((m) => [
      h('span', {}, shortKey(m.key), m.self ? h('span', { class: 'self' }, ' this node') : null),
      h('span', { title: m.root }, m.org),
      badge(m.status, m.status === 'alive' ? 'ok' : m.status === 'suspect' ? 'warn' : 'bad'),
      m.root === view.node.orgRoot ? role(m.key) : badge('other org', 'muted'),
      m.incarnation,
      m.self ? '—' : ago(m.lastHeardAgoMs),
      h('span', { class: 'wrap' }, m.capabilities.join(', '))
    ]), { id: 'members-table' }))
}

function renderRaft (view: View): void {
  const r = view.raft
  fill('raft', h('dl', {},
    h('dt', {}, 'group'), h('dd', {}, r.group),
    h('dt', {}, 'leader'), h('dd', { id: 'raft-leader' }, r.leader === null ? badge('none', 'bad') : shortKey(r.leader), r.leader === view.node.key ? ' (this node)' : ''),
    h('dt', {}, 'this node'), h('dd', {}, `${r.role}, term ${r.term}`),
    h('dt', {}, 'commit / applied'), h('dd', { id: 'raft-commit' }, `${r.commit} / ${r.applied} (last index ${r.lastIndex})`),
    h('dt', {}, `voters (${r.voters.length})`), h('dd', { id: 'raft-voters' }, ...r.voters.map(shortKey)),
    h('dt', {}, `learners (${r.learners.length})`), h('dd', {}, ...(r.learners.length === 0 ? ['none'] : r.learners.map(shortKey)))))
  charts?.raft.update(samples.map((s) => s.tMs), [
    { label: 'commit index', values: samples.map((s) => s.commit) },
    { label: 'applied index', values: samples.map((s) => s.applied), dashed: true }
  ])
}

function renderTrust (view: View, orgOf: Map<string, string>): void {
  const label = (peer: string): string => `${orgOf.get(peer) ?? '?'}/${peer.slice(0, 8)}`
  fill('trust', view.trust.length === 0
    ? h('p', { class: 'summary' }, 'no peer scored yet')
    : table(['peer', 'org', 'score', 'state', 'last event'], view.trust.map((t) => [
      shortKey(t.peer), orgOf.get(t.peer) ?? '?', t.score.toFixed(3),
      t.banned ? badge('banned', 'bad') : t.quarantined ? badge('quarantined', 'bad') : badge('trusted', 'ok'),
      t.events.at(-1)?.type ?? '—'
    ])))
  const peers = [...new Set(samples.flatMap((s) => Object.keys(s.trust)))].sort()
  charts?.trust.update(samples.map((s) => s.tMs), peers.map((p) => ({ label: label(p), values: samples.map((s) => s.trust[p] ?? null) })))
}

function renderFederation (view: View): void {
  const f = view.federation
  byId('pbft-chart').hidden = f === null || f.pbft === undefined
  if (f === null) {
    fill('federation', h('p', { class: 'summary', id: 'federation-summary' }, 'Not federated: this data dir holds no federation genesis (fedmesh federation join FILE).'))
    return
  }
  const p = f.pbft
  // PBFT replicas are the member orgs, named by their root keys.
  const replica = (root: string): HTMLElement => h('span', { title: root }, f.orgs.find((o) => o.root === root)?.name ?? shortKey(root))
  fill('federation',
    h('p', { class: 'summary', id: 'federation-summary' }, `epoch ${f.epoch}, ${f.orgs.length} member orgs; `, f.hosting ? 'this node hosts the org\'s replica' : 'the replica is hosted by the org\'s Raft leader'),
    h('dl', {},
      h('dt', {}, 'members'), h('dd', {}, ...f.orgs.map((o) => h('span', { class: o.root === f.replica ? 'tag self' : 'tag', title: o.root }, o.name))),
      ...(p === undefined ? [] : [
        h('dt', {}, 'PBFT view'), h('dd', { id: 'pbft-view' }, `${p.view}${p.active ? '' : ' (view change under way)'}, primary `, replica(p.primary)),
        h('dt', {}, 'executed seq'), h('dd', {}, `${p.lastExecuted} (watermarks ${p.lowWatermark}..${p.highWatermark})`),
        h('dt', {}, 'pending requests'), h('dd', {}, String(p.pendingRequests))
      ]),
      h('dt', {}, 'envelopes'), h('dd', {}, `${f.received} received, ${f.sent} sent, ${Object.values(f.rejected).reduce((a, b) => a + b, 0)} rejected`)),
    f.viewChanges.length === 0 ? h('p', { class: 'muted' }, 'no view change seen here') : h('div', {}, h('h3', {}, 'recent view changes'),
      table(['time', 'view', 'primary'], f.viewChanges.slice().reverse().map((v) => [clockTime(v.atMs), `${v.from} → ${v.to}`, replica(v.primary)]))),
    f.changes.length === 0 ? null : h('div', {}, h('h3', {}, 'membership changes'),
      table(['epoch', 'change', 'org'], f.changes.map((c) => [c.epoch, c.action, h('span', { title: c.root }, c.org)]))))
  if (p !== undefined) {
    charts?.pbft.update(samples.map((s) => s.tMs), [
      { label: 'executed seq', values: samples.map((s) => s.executed ?? null) },
      { label: 'view', values: samples.map((s) => s.view ?? null), stepped: true }
    ])
  }
}

function renderTasks (view: View): void {
  const { counts, recent } = view.tasks
  const taskCard = (t: Task): HTMLElement => {
    const federated = t.id.includes('-')
    return h('li', { class: 'task' },
      h('b', {}, t.title), ' ', h('span', { class: 'muted' }, t.id), ' ', badge(t.capability, 'plain'), federated ? badge('federated', 'fed') : null,
      t.assignee !== null ? h('span', { class: 'muted' }, ' by ', shortKey(t.assignee)) : null)
  }
  fill('tasks', h('div', { class: 'board' }, ...BOARD_COLUMNS.map((status) => h('div', { class: 'column', id: `tasks-${status}` },
    h('h3', {}, `${status} ${counts.org[status] + counts.federated[status]}`),
    h('p', { class: 'muted' }, `org ${counts.org[status]}, federated ${counts.federated[status]}`),
    h('ul', {}, ...recent[status].map(taskCard))))),
  h('p', { class: 'muted' }, `failed: org ${counts.org.failed}, federated ${counts.federated.failed}`))
}

function renderAudit (view: View): void {
  const v = view.audit.verification
  const verifiedSeq = v.state === 'done' && v.result.ok ? v.head.seq : 0
  const status = v.state === 'done'
    ? (v.result.ok
        ? badge(`verified: entries 1..${v.result.count} chain and are signed (${clockTime(v.atMs)}, ${v.durationMs} ms)`, 'ok')
        : badge(`verification FAILED at entry ${v.result.firstBadSeq}: ${v.result.reason} — ${v.result.message}`, 'bad'))
    : v.state === 'running' ? badge('verifying…', 'warn') : v.state === 'error' ? badge(`could not verify: ${v.message}`, 'bad') : badge('not verified yet', 'muted')
  fill('audit',
    h('p', { class: 'summary', id: 'audit-status' }, `head: entry ${view.audit.head.seq} `, status),
    table(['seq', 'time', 'action', 'decision', 'peer', 'detail', ''], view.audit.tail.slice().reverse().map((e) => [
      e.seq, clockTime(e.timeMs), e.action, badge(e.decision, e.decision === 'reject' || e.decision === 'deny' ? 'bad' : 'plain'),
      e.peer === '' ? '' : shortKey(e.peer),
      h('span', { class: 'wrap' }, Object.entries(e.detail).map(([k, val]) => `${k}=${val}`).join(' ')),
      e.seq <= verifiedSeq ? h('span', { class: 'ok-mark', title: 'verified' }, '✓') : ''
    ]), { id: 'audit-table' }))
}

if (sessionStorage.getItem(TOKEN_KEY) === null) showLogin()
else showConsole()

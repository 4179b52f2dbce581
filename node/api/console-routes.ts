import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ApiError, intParam, type RawResponse, type RouteAccess, type RouteHandler } from './server.js'
import type { AuditVerification, ConsoleMonitor, ConsoleSample, MonitoredNode, ViewChangeSeen } from './console-monitor.js'
import type { AuditEntry, AuditHead } from '../gate/audit.js'
import type { BoardSummary } from '../org/task-board.js'
import type { PeerTrust } from '../../membership/trust.js'
import type { RaftNodeStatus } from '../../consensus/raft/driver.js'
import type { FederationStatus } from '../federation/federation.js'

// The web console: a page and its script (node/api/console/, bundled into dist/console/ by
// `npm run build`), served to anyone since they hold no data, and one JSON route with everything
// the page shows, behind the admin token like the rest of the API. The page asks for the token
// with a login form and keeps it in the tab's sessionStorage; it polls rather than holding an
// EventSource open, since an EventSource cannot send an Authorization header (the token would
// travel in the URL, and end up in logs and history).

export const CONSOLE_TASKS_PER_STATUS = 25
export const CONSOLE_AUDIT_TAIL_DEFAULT = 25
const CONSOLE_AUDIT_TAIL_MAX = 200

/** What the console's JSON route reads of the node, beyond what the monitor reads. */
export interface ConsoleNode extends MonitoredNode {
  status(): unknown
  members(): unknown
  readonly auditLog: MonitoredNode['auditLog'] & { tail(count: number): AsyncIterable<AuditEntry> }
  taskSummary(recentMax: number): BoardSummary
}

/** GET /v1/console: everything the page shows, in one answer per poll. */
export interface ConsoleView {
  /** The node's status and members (NodeStatus, MemberView[]: the node's types, which the API does not import). */
  node: unknown
  members: unknown
  trust: PeerTrust[]
  raft: RaftNodeStatus
  federation: (FederationStatus & { viewChanges: ViewChangeSeen[] }) | null
  tasks: BoardSummary
  audit: { head: AuditHead, tail: AuditEntry[], verification: AuditVerification }
  /** The monitor's samples after ?since= (wall ms), oldest first. */
  samples: ConsoleSample[]
}

export const CONSOLE_ACCESS: Record<string, RouteAccess> = {
  'GET /': 'public',
  'GET /console': 'public',
  'GET /console/console.js': 'public',
  'GET /console/console.css': 'public'
}

// Only the node's own origin: no inline script, nothing fetched from elsewhere, no framing.
const PAGE_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store'
}

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fedmesh console</title>
<link rel="stylesheet" href="/console/console.css">
</head>
<body>
<div id="app"></div>
<script src="/console/console.js"></script>
</body>
</html>
`

export function consoleRoutes (node: ConsoleNode, monitor: ConsoleMonitor): Record<string, RouteHandler> {
  const page = async (): Promise<RawResponse> => ({ contentType: 'text/html; charset=utf-8', body: PAGE, headers: PAGE_HEADERS })
  return {
    'GET /': page,
    'GET /console': page,
    'GET /console/console.js': async () => ({ contentType: 'text/javascript; charset=utf-8', body: await asset('console.js'), headers: PAGE_HEADERS }),
    'GET /console/console.css': async () => ({ contentType: 'text/css; charset=utf-8', body: await asset('console.css'), headers: PAGE_HEADERS }),
    'GET /v1/console': async (url): Promise<ConsoleView> => {
      const since = intParam(url, 'since', 0, Number.MAX_SAFE_INTEGER)
      const federation = node.federationStatus()
      return {
        node: node.status(),
        members: node.members(),
        trust: node.trust(),
        raft: node.raftStatus(),
        federation: federation === undefined ? null : { ...federation, viewChanges: monitor.viewChanges() },
        tasks: node.taskSummary(CONSOLE_TASKS_PER_STATUS),
        audit: {
          head: node.auditLog.head,
          tail: await collect(node.auditLog.tail(intParam(url, 'tail', CONSOLE_AUDIT_TAIL_DEFAULT, CONSOLE_AUDIT_TAIL_MAX))),
          verification: monitor.verification()
        },
        samples: monitor.samples(since)
      }
    }
  }
}

const assets = new Map<string, Promise<Buffer>>()

/** A file of the built console, read once; 503 until `npm run build` made it. */
async function asset (name: string): Promise<Buffer> {
  const path = join(CONSOLE_DIR, name)
  if (!existsSync(path)) throw new ApiError(503, `the console is not built (${path} is missing): run npm run build`)
  let bytes = assets.get(path)
  if (bytes === undefined) assets.set(path, bytes = readFile(path))
  return await bytes
}

export async function collect (entries: AsyncIterable<AuditEntry>, max = Infinity): Promise<AuditEntry[]> {
  const out: AuditEntry[] = []
  for await (const entry of entries) {
    if (out.length >= max) break
    out.push(entry)
  }
  return out
}

/** The bundle sits in the package's dist/console/, whether this module runs from dist/ or from source (tsx). */
const CONSOLE_DIR = join(packageRoot(dirname(fileURLToPath(import.meta.url))), 'dist', 'console')

function packageRoot (from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir
    if (dirname(dir) === dir) return from
  }
}

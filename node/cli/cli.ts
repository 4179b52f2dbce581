#!/usr/bin/env node
import '../runtime/polyfills.js'
import { parseArgs } from 'node:util'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseHostPort } from '../api/server.js'
import { resolveStartConfig, type StartFlags } from '../runtime/config.js'
import { callApi } from '../api/client.js'
import { CONFIG_FILE, defaultDataDir, loadOrCreateToken, readRuntime } from '../runtime/data-dir.js'
import { acceptDelegation, delegateIssuing, hasOrgCertificate, inviteToken, ORG_ROOT_KEY_FILE } from '../org/org-identity.js'
import { assertOrgName, JOIN_TTL_MS_DEFAULT } from '../../base/org-certificate.js'
import { KEY_FILE, loadOrCreateIdentity, peerIdOf } from '../runtime/key-file.js'
import { createLogger } from '../runtime/log.js'
import type { FedmeshNode, MemberView, NodeStatus } from '../node.js'
import { auditCommand, USAGE as AUDIT_USAGE } from './commands/audit.js'
import { policyCommand, USAGE as POLICY_USAGE } from './commands/policy.js'
import { sanitizeCommand, USAGE as SANITIZE_USAGE } from './commands/sanitize.js'
import { simulateCommand, USAGE as SIMULATE_USAGE } from './commands/simulate.js'
import { taskCommand, USAGE as TASK_USAGE } from './commands/task.js'
import { federationCommand, orgOfDataDir, orgRootOfDataDir, USAGE as FEDERATION_USAGE } from './commands/federation.js'
import type { PeerTrust } from '../../membership/trust.js'
import type { LeaveResult, RaftMembers } from '../../consensus/raft/driver.js'

const USAGE = `fedmesh — a peer-to-peer federation mesh node

Usage: fedmesh <command> [options]

Commands:
  init        create the node key, API token and config in the data dir
  invite      print a one-time join token for this node's org (on the founder, or a member it delegated to)
  org         delegate KEY | accept-issuer TEXT: let a member issue invites (on the founder), accept that on the member
  start       run a node (joins a mesh with --bootstrap; a single-node mesh without)
  id          print this node's public key, libp2p peer id and org root key
  status      show the running node's status (via its admin API)
  members     list the mesh members the running node knows; members remove KEY: remove one from the org's Raft group
  raft        members: the org's Raft group as its leader sees it (voters, learners, health)
  leave       leave the org's Raft group (when it keeps a quorum without this node), then stop the node
  trust       show the running node's trust scores and the recent events behind them
  audit       tail | export | verify the tamper-evident audit log
  policy      check FILE | explain: validate a capability policy, explain a decision
  sanitize    scrub PII and secrets from JSON on stdin (report on stderr)
  task        propose | list | get | claim | complete | fail tasks on the org's replicated board
  federation  create | join | show | status | vote | export: the PBFT federation of orgs (genesis, epochs, votes)
  simulate    run a whole federation under faults in simulated time; writes a JSON and HTML report

Common options:
  --data-dir DIR   node state (default $FEDMESH_HOME or ~/.fedmesh)
  --json           machine-readable output (id, status, members)
  -h, --help       this text, or a command's (fedmesh COMMAND --help)
  --version        the fedmesh version

start options (each also from env FEDMESH_<NAME> or <data-dir>/config.json):
  --org NAME             organisation to found on first start (default 'default')
  --join TOKEN           join the organisation that issued TOKEN (fedmesh invite) on first start
  --listen MULTIADDR     repeatable (default /ip4/0.0.0.0/tcp/7400)
  --announce MULTIADDR   repeatable: the address(es) other machines reach this node at, announced and put in
                         invite tokens instead of the listening ones (behind NAT or a port forward)
  --bootstrap MULTIADDR  repeatable; a member's address to join through
  --api HOST:PORT        admin API address (default 127.0.0.1:7401; port 0 picks a free one)
  --capability NAME      repeatable; capabilities this node exposes
  --heartbeat-ms N       announcement interval (default 1000)
  --suspect-after-ms N   silence before a member is suspect (default 3 heartbeats)
  --dead-after-ms N      silence before a member is dead (default 6 heartbeats)
  --raft-tick-ms N       the org's Raft tick (default 50)
  --raft-election-ticks N  election timeout in ticks, randomised up to 2x (default 10)
  --raft-voters-max N    voters in the org's Raft group; further members stay learners (default 5)
  --metrics-unauthenticated  serve GET /metrics without a token to loopback clients
                         (otherwise it takes the admin token or the read-only <data-dir>/metrics.token)
  --raft-dead-voter-remove-after-ms N  the leader removes a voter silent this long, if a healthy quorum remains (default 300000; 0: never)
  --force-new-group      disaster recovery, once: this node becomes the org's only Raft voter from its own log (audited)
`

const START_OPTIONS_AT = USAGE.indexOf('start options')

type Command = (args: string[]) => Promise<number>

async function main (argv: string[]): Promise<number> {
  const [name, ...args] = argv
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(USAGE)
    return 0
  }
  if (name === '--version' || name === 'version' || args.includes('--version')) {
    process.stdout.write(`fedmesh ${version()}\n`)
    return 0
  }
  const command = COMMANDS[name]
  if (command === undefined) {
    process.stderr.write(`fedmesh: unknown command '${name}'\n\n${USAGE}`)
    return 2
  }
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(COMMAND_USAGE[name]!.trimEnd() + '\n')
    return 0
  }
  return await command(args)
}

/** The package's version: package.json sits two levels above node/cli/ in the source tree, three in dist/. */
function version (): string {
  for (const path of ['../../package.json', '../../../package.json']) {
    const url = new URL(path, import.meta.url)
    if (existsSync(url)) return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version
  }
  return 'unknown'
}

const DATA_DIR_OPTION = { 'data-dir': { type: 'string' } } as const
const JSON_OPTION = { json: { type: 'boolean', default: false } } as const

async function init (args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { ...DATA_DIR_OPTION, org: { type: 'string' } } })
  const dataDir = values['data-dir'] ?? defaultDataDir()
  const { identity, created } = await loadOrCreateIdentity(dataDir)
  await loadOrCreateToken(dataDir)
  let root: string | undefined
  if (values.org !== undefined) {
    assertOrgName(values.org)
    const path = join(dataDir, CONFIG_FILE)
    const config = await readFile(path, 'utf8').then((t) => JSON.parse(t) as Record<string, unknown>, () => ({}))
    await writeFile(path, JSON.stringify({ ...config, org: values.org }, null, 2) + '\n', { mode: 0o600 })
    // The org root now, not at first start: its key goes into a federation genesis before any node runs.
    if (!hasOrgCertificate(dataDir)) root = (await loadOrCreateIdentity(dataDir, ORG_ROOT_KEY_FILE)).identity.publicKeyHex
  }
  process.stdout.write(`${created ? 'created' : 'existing'} node key in ${dataDir}\n  key      ${identity.publicKeyHex}\n  peer id  ${peerIdOf(identity.publicKey).toString()}\n` +
    (root !== undefined ? `  org      ${values.org!} (founded at first start)\n  org root ${root}\n` : ''))
  return 0
}

async function invite (args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { ...DATA_DIR_OPTION, 'ttl-ms': { type: 'string', default: String(JOIN_TTL_MS_DEFAULT) } } })
  const dataDir = values['data-dir'] ?? defaultDataDir()
  const ttlMs = Number(values['ttl-ms'])
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) throw new Error('--ttl-ms must be a positive integer')
  const runtime = await readRuntime(dataDir)
  if (runtime === undefined) {
    process.stderr.write(`fedmesh: start the node in ${dataDir} first: the token names its addresses, and it serves the join\n`)
    return 1
  }
  const token = await inviteToken(dataDir, runtime.multiaddrs, Date.now(), new Uint8Array(randomBytes(16)), ttlMs)
  process.stdout.write(`${token}\n`)
  process.stderr.write(`one-time token for org '${runtime.org}', valid ${Math.round(ttlMs / 60000)} min: fedmesh start --join <token>\n`)
  return 0
}

/** `org delegate KEY` on the founder prints a grant; `org accept-issuer TEXT` on that member stores it (restart to serve joins). */
async function org (args: string[]): Promise<number> {
  const [sub, ...rest] = args
  const { values, positionals } = parseArgs({ args: rest, options: { ...DATA_DIR_OPTION, 'ttl-ms': { type: 'string' } }, allowPositionals: true })
  const dataDir = values['data-dir'] ?? defaultDataDir()
  const arg = positionals[0]
  if (sub === 'delegate' && arg !== undefined && /^[0-9a-f]{64}$/.test(arg)) {
    const ttlMs = values['ttl-ms'] === undefined ? undefined : Number(values['ttl-ms'])
    if (ttlMs !== undefined && (!Number.isSafeInteger(ttlMs) || ttlMs <= 0)) throw new Error('--ttl-ms must be a positive integer')
    process.stdout.write(`${await delegateIssuing(dataDir, Buffer.from(arg, 'hex'), Date.now(), ttlMs)}\n`)
    process.stderr.write(`on member ${arg.slice(0, 16)}: fedmesh org accept-issuer <text>, then restart it; it can then invite\n`)
    return 0
  }
  if (sub === 'accept-issuer' && arg !== undefined) {
    const delegation = await acceptDelegation(dataDir, arg, Date.now())
    process.stdout.write(`this node may issue invites for org '${delegation.org}' until ${new Date(delegation.expiresAtMs).toISOString()} (restart it to serve joins)\n`)
    return 0
  }
  process.stderr.write('usage: fedmesh org delegate KEY [--ttl-ms N] | fedmesh org accept-issuer TEXT [--data-dir DIR]\n')
  return 2
}

async function start (args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...DATA_DIR_OPTION,
      org: { type: 'string' },
      join: { type: 'string' },
      listen: { type: 'string', multiple: true },
      announce: { type: 'string', multiple: true },
      bootstrap: { type: 'string', multiple: true },
      api: { type: 'string' },
      capability: { type: 'string', multiple: true },
      'heartbeat-ms': { type: 'string' },
      'suspect-after-ms': { type: 'string' },
      'dead-after-ms': { type: 'string' },
      'raft-tick-ms': { type: 'string' },
      'raft-election-ticks': { type: 'string' },
      'raft-voters-max': { type: 'string' },
      'metrics-unauthenticated': { type: 'boolean' },
      'raft-dead-voter-remove-after-ms': { type: 'string' },
      // A flag only (no env, no config key): a recovery must not repeat at every restart.
      'force-new-group': { type: 'boolean', default: false }
    }
  })
  const dataDir = values['data-dir'] ?? defaultDataDir()
  const flags: StartFlags = {
    org: values.org,
    join: values.join,
    listen: values.listen,
    announce: values.announce,
    bootstrap: values.bootstrap,
    api: values.api,
    capabilities: values.capability,
    heartbeatMs: values['heartbeat-ms'],
    suspectAfterMs: values['suspect-after-ms'],
    deadAfterMs: values['dead-after-ms'],
    raftTickMs: values['raft-tick-ms'],
    raftElectionTicks: values['raft-election-ticks'],
    raftVotersMax: values['raft-voters-max'],
    metricsUnauthenticated: values['metrics-unauthenticated'] === true ? 'true' : undefined,
    raftDeadVoterRemoveAfterMs: values['raft-dead-voter-remove-after-ms']
  }
  const config = await resolveStartConfig(dataDir, flags)
  const logger = createLogger('fedmesh')
  // Loaded here so that the light commands (status, members...) start fast without libp2p.
  const { FedmeshNode } = await import('../node.js')
  const node = await FedmeshNode.start({
    dataDir,
    ...(config.org !== undefined ? { org: config.org } : {}),
    ...(config.join !== undefined ? { join: config.join } : {}),
    listen: config.listen,
    ...(config.announce.length > 0 ? { announce: config.announce } : {}),
    bootstrap: config.bootstrap,
    api: { ...parseHostPort(config.api), metricsUnauthenticated: config.metricsUnauthenticated },
    capabilities: config.capabilities,
    heartbeatMs: config.heartbeatMs,
    ...(config.suspectAfterMs !== undefined ? { suspectAfterMs: config.suspectAfterMs } : {}),
    ...(config.deadAfterMs !== undefined ? { deadAfterMs: config.deadAfterMs } : {}),
    raft: {
      ...(config.raftTickMs !== undefined ? { tickMs: config.raftTickMs } : {}),
      ...(config.raftElectionTicks !== undefined ? { electionTicks: config.raftElectionTicks } : {}),
      ...(config.raftVotersMax !== undefined ? { votersMax: config.raftVotersMax } : {}),
      ...(config.raftDeadVoterRemoveAfterMs !== undefined ? { deadVoterRemoveAfterMs: config.raftDeadVoterRemoveAfterMs } : {})
    },
    forceNewGroup: values['force-new-group'],
    logger
  })
  process.stdout.write(startBanner(node))
  await new Promise<void>((resolve) => {
    let stopping = false
    // Stopped through the admin API (fedmesh leave): the process ends with the node.
    node.once('stopped', resolve)
    const shutdown = (signal: string): void => {
      if (stopping) return
      stopping = true
      logger.info({ signal }, 'stopping: leaving the org\'s Raft group, announcing leave')
      node.leave().then(() => resolve(), (err) => { logger.error({ err: (err as Error).message }, 'stop failed'); resolve() })
    }
    process.once('SIGINT', () => shutdown('SIGINT'))
    process.once('SIGTERM', () => shutdown('SIGTERM'))
  })
  return 0
}

function startBanner (node: FedmeshNode): string {
  const addrs = node.multiaddrs()
  const local = addrs.find((a) => a.startsWith('/ip4/127.') || a.startsWith('/ip6/::1/'))
  const remote = addrs.find((a) => a !== local && !a.startsWith('/ip4/127.') && !a.startsWith('/ip6/::1/'))
  return [
    `fedmesh node started (org ${node.org})`,
    `  key      ${node.key}`,
    `  peer id  ${node.peerId}`,
    `  api      ${node.apiUrl ?? 'disabled'}`,
    '  listening on:',
    ...addrs.map((a) => `    ${a}`),
    // A first start with --bootstrap names its org: a new one (--org), or this one (--join a token from fedmesh invite).
    ...(local !== undefined ? [`join from this machine:     fedmesh start --org NAME --bootstrap ${local}`] : []),
    ...(remote !== undefined ? [`join from another machine:  fedmesh start --org NAME --bootstrap ${remote}`] : []),
    ...(local !== undefined || remote !== undefined ? ['  (--org NAME founds another org in this mesh; to join this org: --join TOKEN from fedmesh invite)'] : []),
    ''
  ].join('\n')
}

async function id (args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { ...DATA_DIR_OPTION, ...JSON_OPTION } })
  const dataDir = values['data-dir'] ?? defaultDataDir()
  if (!existsSync(join(dataDir, KEY_FILE))) {
    process.stderr.write(`fedmesh: no node key in ${dataDir} (run: fedmesh init --data-dir ${dataDir})\n`)
    return 1
  }
  const { identity } = await loadOrCreateIdentity(dataDir)
  // Before a first start, the org is the one `init --org` (or config.json) names, its root the key init created.
  const org: { org: string, root: string, pending?: true } | undefined = await orgOfDataDir(dataDir) ?? await orgToFound(dataDir)
  const info = { key: identity.publicKeyHex, peerId: peerIdOf(identity.publicKey).toString(), org: org?.org ?? null, orgRoot: org?.root ?? null, ...(org?.pending === true ? { founded: false } : {}) }
  process.stdout.write(values.json
    ? JSON.stringify(info) + '\n'
    : `key      ${info.key}\npeer id  ${info.peerId}\n` + (org !== undefined ? `org      ${org.org}${org.pending === true ? ' (founded at first start)' : ''}\norg root ${org.root}\n` : ''))
  return 0
}

async function orgToFound (dataDir: string): Promise<{ org: string, root: string, pending: true } | undefined> {
  const root = await orgRootOfDataDir(dataDir)
  if (root === undefined) return undefined
  const { org } = await resolveStartConfig(dataDir, {}, {})
  return { org: org ?? 'default', root, pending: true }
}

/** A read-only command over the running node's API: JSON with --json, else rendered for people. */
function apiCommand<T> (path: string, render: (result: T) => string): Command {
  return async (args) => {
    const { values } = parseArgs({ args, options: { ...DATA_DIR_OPTION, ...JSON_OPTION } })
    const result = await callApi<T>(values['data-dir'] ?? defaultDataDir(), path)
    if (result === undefined) return 1
    process.stdout.write(values.json ? JSON.stringify(result) + '\n' : render(result))
    return 0
  }
}

const status = apiCommand<NodeStatus>('/v1/status', (result) => {
  const m = result.members
  return [
    `key          ${result.key}`,
    `peer id      ${result.peerId}`,
    `org          ${result.org} (root ${result.orgRoot.slice(0, 16)})`,
    `incarnation  ${result.incarnation}`,
    `peers        ${result.peers}`,
    `members      ${m.alive} alive, ${m.suspect} suspect, ${m.dead} dead, ${m.left} left`,
    `audit        ${result.audit.seq} entries, head ${result.audit.hash.slice(0, 16)}`,
    `raft         ${result.raft.role}, term ${result.raft.term}, leader ${result.raft.leader?.slice(0, 16) ?? 'none'}, commit ${result.raft.commit}, applied ${result.raft.applied}, ${result.raft.voters.length} voters, ${result.raft.learners.length} learners`,
    `uptime       ${Math.round(result.uptimeMs / 1000)} s`,
    'addresses',
    ...result.multiaddrs.map((a) => `  ${a}`),
    ''
  ].join('\n')
})

const listMembers = apiCommand<MemberView[]>('/v1/members', (result) => table(['KEY', 'ORG', 'ROOT', 'STATUS', 'INC', 'HEARD', 'CAPABILITIES'],
  result.map((m) => [m.key.slice(0, 16) + (m.self ? '*' : ' '), m.org, m.root.slice(0, 8), m.status, String(m.incarnation), `${(m.lastHeardAgoMs / 1000).toFixed(1)}s`, m.capabilities.join(',')])))

async function members (args: string[]): Promise<number> {
  if (args[0] !== 'remove') return await listMembers(args)
  const { values, positionals } = parseArgs({ args: args.slice(1), options: { ...DATA_DIR_OPTION, ...JSON_OPTION }, allowPositionals: true })
  const key = positionals[0]
  if (key === undefined || positionals.length !== 1) {
    process.stderr.write('usage: fedmesh members remove KEY [--data-dir DIR]\n')
    return 2
  }
  const result = await callApi<{ removed: string }>(values['data-dir'] ?? defaultDataDir(), '/v1/raft/remove', { body: { key } })
  if (result === undefined) return 1
  process.stdout.write(values.json ? JSON.stringify(result) + '\n' : `removed ${result.removed} from the org's Raft group\n`)
  return 0
}

const raftMembers = apiCommand<RaftMembers>('/v1/raft/members', (result) => `group ${result.group}, term ${result.term}, commit ${result.commit}\n` +
  table(['KEY', 'ROLE', 'MATCH', 'LAST CONTACT', 'HEALTHY'], result.members.map((m) => [
    m.key + (m.key === result.leader ? ' (leader)' : ''), m.role, String(m.match), `${(m.lastContactAgoMs / 1000).toFixed(1)}s`, m.healthy ? 'yes' : 'no'
  ])))

async function raft (args: string[]): Promise<number> {
  if (args[0] === 'members') return await raftMembers(args.slice(1))
  process.stderr.write('usage: fedmesh raft members [--data-dir DIR] [--json]\n')
  return 2
}

/** Asks the running node to leave the org's Raft group and stop; waits for its process to exit. */
async function leave (args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { ...DATA_DIR_OPTION, ...JSON_OPTION } })
  const dataDir = values['data-dir'] ?? defaultDataDir()
  const pid = (await readRuntime(dataDir))?.pid
  const result = await callApi<LeaveResult>(dataDir, '/v1/leave', { body: {} })
  if (result === undefined) return 1
  process.stdout.write(values.json ? JSON.stringify(result) + '\n' : result.removed ? 'left the org\'s Raft group\n' : `still a member of the org's Raft group (${result.reason}: ${result.message})\n`)
  const deadlineMs = Date.now() + LEAVE_EXIT_WAIT_MS
  while (pid !== undefined && isRunning(pid)) {
    if (Date.now() > deadlineMs) {
      process.stderr.write(`fedmesh: the node (pid ${pid}) did not exit within ${LEAVE_EXIT_WAIT_MS / 1000} s\n`)
      return 1
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  if (!values.json) process.stdout.write('node stopped\n')
  return 0
}

const LEAVE_EXIT_WAIT_MS = 30_000

function isRunning (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

const trust = apiCommand<PeerTrust[]>('/v1/trust', (result) => table(['PEER', 'SCORE', 'STATE', 'RECENT EVENTS'],
  result.map((t) => [t.peer.slice(0, 16), t.score.toFixed(3), t.quarantined ? 'quarantined' : 'ok',
    t.events.slice(-3).map((e) => `${e.type}(${e.delta >= 0 ? '+' : ''}${e.delta.toFixed(3)})`).join(' ')])))

function table (header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  return [header, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n'
}

const COMMON = '[--data-dir DIR] [--json]'
const COMMAND_USAGE: Record<string, string> = {
  init: 'usage: fedmesh init [--org NAME] [--data-dir DIR]\n    create the node key (node.key, 0600), API token and config (org) in the data dir',
  invite: 'usage: fedmesh invite [--ttl-ms N] [--data-dir DIR]\n    print a one-time join token for this org (on the running node that holds org-root.key; default 1 h)',
  start: 'usage: fedmesh start [options]\n    run a node (a first start with --bootstrap needs --org NAME or --join TOKEN)\n\n' + USAGE.slice(START_OPTIONS_AT),
  id: `usage: fedmesh id ${COMMON}\n    this node's key, peer id, org and org root (no running node needed)`,
  status: `usage: fedmesh status ${COMMON}\n    the running node's status (exit 1 when no node runs in the data dir)`,
  members: `usage: fedmesh members ${COMMON} | fedmesh members remove KEY [--data-dir DIR]\n    every mesh member the running node knows; remove KEY: have the org's Raft leader remove a member (from any member)`,
  raft: 'usage: fedmesh raft members [--data-dir DIR] [--json]\n    the org\'s Raft group as its leader sees it (asked from any member)',
  leave: 'usage: fedmesh leave [--data-dir DIR] [--json]\n    have the org\'s Raft leader remove this node (when a healthy quorum remains without it), then stop it',
  org: 'usage: fedmesh org delegate KEY [--ttl-ms N] | fedmesh org accept-issuer TEXT [--data-dir DIR]\n    let a member issue invites (on the founder), or accept that right (on the member)',
  trust: `usage: fedmesh trust ${COMMON}\n    trust score per peer and the recent events behind it`,
  audit: AUDIT_USAGE,
  policy: POLICY_USAGE,
  sanitize: SANITIZE_USAGE,
  task: TASK_USAGE,
  federation: FEDERATION_USAGE,
  simulate: SIMULATE_USAGE
}

const COMMANDS: Record<string, Command> = { init, invite, org, start, id, status, members, raft, leave, trust, audit: auditCommand, policy: policyCommand, sanitize: sanitizeCommand, task: taskCommand, federation: federationCommand, simulate: simulateCommand }

main(process.argv.slice(2)).then((code) => { process.exitCode = code }, (err: Error) => {
  process.stderr.write(`fedmesh: ${err.message}\n`)
  process.exitCode = 1
  // A failed command (a start that failed part way) exits even if something it opened lingers.
  setTimeout(() => process.exit(1), 5_000).unref()
})

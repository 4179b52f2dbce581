import { createReadStream, existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import {
  AUDIT_TAIL_ENTRIES_MAX, GENESIS_HASH, auditEntryJson, auditEntryKey, auditSince, auditTail, decodeStoredAuditEntry, encodeAuditFields, entryProblem,
  hashAuditFieldsBytes, parseAuditEntry, verifyAuditLog, type AuditEntry, type AuditFrom, type AuditHead, type AuditVerifyFailure, type AuditVerifyResult
} from '../../gate/audit.js'
import { callApi } from '../../api/client.js'
import { DB_DIR, defaultDataDir } from '../../runtime/data-dir.js'
import { FedmeshError } from '../../../base/errors.js'
import type { Anchor } from '../../federation/state.js'
import { KEY_FILE, loadOrCreateIdentity } from '../../runtime/key-file.js'
import { LevelStorage } from '../../runtime/level-storage.js'
import type { Storage } from '../../../base/storage.js'

export const USAGE = `usage:
  fedmesh audit tail [-n N] [--json] [--data-dir D]
      the last N audit entries (default 20, at most ${AUDIT_TAIL_ENTRIES_MAX}), oldest first
  fedmesh audit export [--since SEQ | --since-time ISO] [--data-dir D]
      entries from SEQ (or from a time on) as JSON lines
  fedmesh audit verify [--json] [--data-dir D]
      check every hash, signature and link: exit 0 intact, 1 with the first bad sequence number
  fedmesh audit verify --federation [--anchors FILE] [--json] [--data-dir D]
      also check the log against the audit heads this node anchored in the federation (from the
      running node, or FILE = the JSON of GET /v1/federation/anchors when it is stopped): a log
      truncated below an anchor or rewritten at or before one fails, naming the anchor
  fedmesh audit verify --federation --file EXPORT.jsonl --node KEYHEX [--anchors FILE] [--json] [--data-dir D]
      check another node's export (fedmesh audit export) against its anchors as this org's
      running node holds them
While the node runs (its database is locked) the command reads through the node's admin API.`

export interface CommandOutput {
  stdout(text: string): void
  stderr(text: string): void
}

export const processOutput: CommandOutput = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text)
}

class UsageError extends Error {}

export async function auditCommand (args: string[], out: CommandOutput = processOutput): Promise<number> {
  const [sub, ...rest] = args
  try {
    if (sub === 'tail') return await tail(rest, out)
    if (sub === 'export') return await exportEntries(rest, out)
    if (sub === 'verify') return await verify(rest, out)
    if (sub !== undefined) throw new UsageError(`unknown subcommand ${JSON.stringify(sub)}`)
  } catch (err) {
    if (err instanceof FedmeshError) {
      out.stderr(`fedmesh audit: ${err.message}\n`)
      return 2
    }
    if (!(err instanceof UsageError) && (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') !== true) throw err
    out.stderr(`fedmesh audit: ${(err as Error).message}\n`)
  }
  out.stderr(USAGE + '\n')
  return 2
}

async function tail (args: string[], out: CommandOutput): Promise<number> {
  const { values } = parseArgs({ args, options: { n: { type: 'string', short: 'n' }, json: { type: 'boolean' }, ...DATA_DIR_OPTION }, strict: true })
  const count = values.n === undefined ? 20 : Number(values.n)
  if (!Number.isSafeInteger(count) || count < 0 || count > AUDIT_TAIL_ENTRIES_MAX) {
    throw new UsageError(`-n must be an integer in 0..${AUDIT_TAIL_ENTRIES_MAX}`)
  }
  const print = (entry: AuditEntry): void => out.stdout((values.json === true ? auditEntryJson(entry) : humanLine(entry)) + '\n')
  return await withLog(values['data-dir'], out, async (storage) => {
    for await (const entry of auditTail(storage, count)) print(entry)
    return 0
  }, async (dataDir) => {
    const entries = await callApi<AuditEntry[]>(dataDir, `/v1/audit?tail=${count}`)
    entries?.forEach(print)
    return entries === undefined ? 2 : 0
  })
}

async function exportEntries (args: string[], out: CommandOutput): Promise<number> {
  const { values } = parseArgs({ args, options: { since: { type: 'string' }, 'since-time': { type: 'string' }, ...DATA_DIR_OPTION }, strict: true })
  const from = sinceOption(values.since, values['since-time'])
  return await withLog(values['data-dir'], out, async (storage) => {
    for await (const entry of auditSince(storage, from)) out.stdout(auditEntryJson(entry) + '\n')
    return 0
  }, async (dataDir) => {
    const query = 'timeMs' in from ? `sinceTime=${new Date(from.timeMs).toISOString()}` : `since=${from.seq}`
    const lines = await callApi<string>(dataDir, `/v1/audit/export?${query}`, { text: true })
    if (lines !== undefined) out.stdout(lines)
    return lines === undefined ? 2 : 0
  })
}

async function verify (args: string[], out: CommandOutput): Promise<number> {
  const { values } = parseArgs({ args, options: VERIFY_OPTIONS, strict: true })
  if (values.federation === true || values.file !== undefined || values.anchors !== undefined || values.node !== undefined) return await verifyFederation(values, out)
  const report = (result: AuditVerifyResult): number => {
    if (values.json === true) {
      out.stdout(JSON.stringify(result) + '\n')
    } else {
      out.stdout(chainLine(result))
    }
    return result.ok ? 0 : 1
  }
  return await withLog(values['data-dir'], out, async (storage, ownerHex) => report(await verifyAuditLog(storage, ownerHex)), async (dataDir) => {
    const result = await callApi<AuditVerifyResult>(dataDir, '/v1/audit/verify')
    return result === undefined ? 2 : report(result)
  })
}

const VERIFY_OPTIONS = {
  json: { type: 'boolean' },
  federation: { type: 'boolean' },
  anchors: { type: 'string' },
  file: { type: 'string' },
  node: { type: 'string' },
  'data-dir': { type: 'string' }
} as const

function chainLine (result: AuditVerifyResult): string {
  return result.ok
    ? `ok: ${result.count} entries, head ${result.headHash}\n`
    : `TAMPERED: first bad entry is seq ${result.firstBadSeq} (${result.reason}): ${result.message}\n`
}

// ---- verify --federation: the log against the heads its node anchored through PBFT ----

const KEY_HEX = /^[0-9a-f]{64}$/
const ANCHORS_MAX = 1024
const ANCHORS_FILE_BYTES_MAX = 1024 * 1024
const EXPORT_LINE_CHARS_MAX = 64 * 1024

/** Why an anchor does not hold: no entry at its seq, another entry there, or a broken chain at or before it. */
export type AnchorProblem = 'missing' | 'mismatch' | 'chain-broken' | 'not-covered'
export interface AnchorFailure { seq: number, epoch: number, auditSeq: number, head: string, problem: AnchorProblem, firstBadSeq: number, message: string }
export interface FederationVerifyResult {
  ok: boolean
  node: string
  chain: AuditVerifyResult
  /** How many anchors were checked. */
  anchors: number
  failures: AnchorFailure[]
  /** The first audit seq known bad (chain or anchors), when not ok. */
  firstBadSeq?: number
}

/** What an anchor check needs of a log: its own chain check, its range, and the content hash at each anchored seq. */
export interface AnchoredLog { chain: AuditVerifyResult, firstSeq: number, lastSeq: number, hashes: ReadonlyMap<number, string> }

/**
 * Checks a node's log against its anchors (pure). An anchor holds when the entry at its auditSeq
 * exists, its content hashes to the anchored head and the chain is intact up to it: an entry
 * rewritten at or before an anchor either changes that hash (re-chained) or breaks the chain.
 */
export function checkAnchors (node: string, anchors: readonly Anchor[], log: AnchoredLog): FederationVerifyResult {
  const chainBad = log.chain.ok ? Infinity : log.chain.firstBadSeq
  const failures: AnchorFailure[] = []
  let matched = log.firstSeq - 1
  for (const a of [...anchors].sort((x, y) => x.auditSeq - y.auditSeq)) {
    const fail = (problem: AnchorProblem, firstBadSeq: number, message: string): void => {
      failures.push({ seq: a.seq, epoch: a.epoch, auditSeq: a.auditSeq, head: a.head, problem, firstBadSeq, message })
    }
    const hash = log.hashes.get(a.auditSeq)
    if (a.auditSeq < log.firstSeq) {
      fail('not-covered', a.auditSeq, `the log checked starts at entry ${log.firstSeq}, after anchored entry ${a.auditSeq}`)
    } else if (hash === undefined) {
      const truncated = a.auditSeq > log.lastSeq
      fail('missing', Math.min(chainBad, truncated ? log.lastSeq + 1 : a.auditSeq),
        truncated ? `the log ends at entry ${log.lastSeq}, below anchored entry ${a.auditSeq}: truncated` : `anchored entry ${a.auditSeq} is missing`)
    } else if (hash !== a.head) {
      fail('mismatch', Math.min(chainBad, a.auditSeq), `entry ${a.auditSeq} is not the anchored one: the log was rewritten between entries ${matched + 1} and ${a.auditSeq}`)
    } else if (chainBad <= a.auditSeq) {
      fail('chain-broken', chainBad, `the chain breaks at entry ${chainBad}, at or before anchored entry ${a.auditSeq}`)
    } else {
      matched = a.auditSeq
    }
  }
  const ok = log.chain.ok && failures.length === 0
  const firstBadSeq = Math.min(chainBad, ...failures.map((f) => f.firstBadSeq))
  return { ok, node, chain: log.chain, anchors: anchors.length, failures, ...(ok ? {} : { firstBadSeq }) }
}

/** Validates untrusted anchors (a file or an API answer: {node, anchors}) for the node being checked. */
export function parseAnchors (value: unknown, node: string): Anchor[] {
  const bad = (what: string): never => { throw new FedmeshError('anchors-invalid', `bad anchors: ${what}`) }
  const { node: owner, anchors } = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>
  if (owner !== node) return bad(`they are node ${String(owner).slice(0, 64)}'s, not ${node}'s`)
  if (!Array.isArray(anchors) || anchors.length > ANCHORS_MAX) return bad(`anchors must be a list of at most ${ANCHORS_MAX}`)
  return anchors.map((v: unknown): Anchor => {
    const a = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>
    if (a.node !== node || typeof a.root !== 'string' || !KEY_HEX.test(a.root) || typeof a.head !== 'string' || !KEY_HEX.test(a.head) ||
      !isCount(a.auditSeq) || a.auditSeq < 1 || !isCount(a.epoch) || !isCount(a.seq)) return bad('an anchor is not {node, root, auditSeq, head, epoch, seq}')
    return { node, root: a.root, auditSeq: a.auditSeq, head: a.head, epoch: a.epoch, seq: a.seq }
  })
}

async function verifyFederation (values: { json?: boolean, anchors?: string, file?: string, node?: string, 'data-dir'?: string }, out: CommandOutput): Promise<number> {
  if ((values.file === undefined) !== (values.node === undefined)) throw new UsageError('--file EXPORT.jsonl and --node KEYHEX go together')
  if (values.node !== undefined && !KEY_HEX.test(values.node)) throw new UsageError('--node takes a node key: 64 lowercase hex digits')
  const dataDir = values['data-dir'] ?? defaultDataDir()
  const anchorsOf = async (node: string): Promise<Anchor[] | undefined> => {
    if (values.anchors !== undefined) return parseAnchors(await readJsonFile(values.anchors, ANCHORS_FILE_BYTES_MAX), node)
    const answer = await callApi<unknown>(dataDir, `/v1/federation/anchors?node=${node}`)
    return answer === undefined ? undefined : parseAnchors(answer, node)
  }
  const report = (result: FederationVerifyResult): number => {
    out.stdout(values.json === true ? JSON.stringify(result) + '\n' : federationLines(result))
    return result.ok ? 0 : 1
  }
  if (values.file !== undefined && values.node !== undefined) {
    if (!existsSync(values.file)) throw new FedmeshError('file-missing', `no export file ${values.file}`)
    const anchors = await anchorsOf(values.node)
    if (anchors === undefined) return 2
    return report(checkAnchors(values.node, anchors, await exportedLog(values.file, values.node, anchors)))
  }
  return await withLog(dataDir, out, async (storage, ownerHex) => {
    const anchors = await anchorsOf(ownerHex)
    return anchors === undefined ? 2 : report(checkAnchors(ownerHex, anchors, await storedLog(storage, ownerHex, anchors)))
  }, async () => {
    const { identity } = await loadOrCreateIdentity(dataDir)
    const anchors = await anchorsOf(identity.publicKeyHex)
    const log = anchors === undefined ? undefined : await apiLog(dataDir, anchors)
    return anchors === undefined || log === undefined ? 2 : report(checkAnchors(identity.publicKeyHex, anchors, log))
  })
}

function federationLines (r: FederationVerifyResult): string {
  const lines = r.chain.ok ? [] : [chainLine(r.chain).trimEnd()]
  for (const f of r.failures) lines.push(`TAMPERED: anchor seq ${f.seq} (epoch ${f.epoch}) of audit entry ${f.auditSeq}: ${f.message}; first bad audit seq ${f.firstBadSeq}`)
  if (r.ok) {
    lines.push(chainLine(r.chain).trimEnd() + (r.anchors === 0 ? '; no anchors yet (only the chain was checked)' : `; ${r.anchors} anchors in the federation match`))
  } else {
    lines.push(`FAILED: node ${r.node}, first bad audit seq ${r.firstBadSeq}${r.failures.length > 0 ? ` (${r.failures.length} of ${r.anchors} anchors do not hold)` : ''}`)
  }
  return lines.join('\n') + '\n'
}

/** The node's own database (stopped node): its chain check, last entry and the content hashes at the anchored seqs. */
async function storedLog (storage: Storage, ownerHex: string, anchors: readonly Anchor[]): Promise<AnchoredLog> {
  const hashes = new Map<number, string>()
  for (const { auditSeq } of anchors) {
    const bytes = await storage.get(auditEntryKey(auditSeq))
    if (bytes === undefined) continue
    try {
      hashes.set(auditSeq, hashAuditFieldsBytes(decodeStoredAuditEntry(bytes).fieldsBytes))
    } catch {
      hashes.set(auditSeq, '')   // undecodable: not the anchored entry (the chain check names it)
    }
  }
  let lastSeq = 0
  for await (const entry of auditTail(storage, 1)) lastSeq = entry.seq
  return { chain: await verifyAuditLog(storage, ownerHex), firstSeq: 1, lastSeq, hashes }
}

/** The same through the running node's API (the node checks its own chain; entries come one per anchor). */
async function apiLog (dataDir: string, anchors: readonly Anchor[]): Promise<AnchoredLog | undefined> {
  const chain = await callApi<AuditVerifyResult>(dataDir, '/v1/audit/verify')
  const last = await callApi<unknown[]>(dataDir, '/v1/audit?tail=1')
  if (chain === undefined || last === undefined) return undefined
  const hashes = new Map<number, string>()
  for (const { auditSeq } of anchors) {
    const line = await callApi<string>(dataDir, `/v1/audit/export?since=${auditSeq}&limit=1`, { text: true })
    if (line === undefined) return undefined
    if (line.trim() === '') continue
    const entry = parseAuditEntry(JSON.parse(line) as unknown)
    if (entry.seq === auditSeq) hashes.set(auditSeq, hashAuditFieldsBytes(encodeAuditFields(entry)))
  }
  return { chain, firstSeq: 1, lastSeq: last.length === 0 ? 0 : parseAuditEntry(last[0]).seq, hashes }
}

/**
 * Another node's export (JSON lines, from any seq on), streamed: the chain within it (links, hashes,
 * signatures by ownerHex) and the content hashes at the anchored seqs. After the first break the
 * rest is still read for those hashes, so the anchors it contradicts are named too.
 */
async function exportedLog (file: string, ownerHex: string, anchors: readonly Anchor[]): Promise<AnchoredLog> {
  const wanted = new Set(anchors.map((a) => a.auditSeq))
  const hashes = new Map<number, string>()
  let previous: AuditHead | undefined
  let firstSeq = 1
  let lastSeq = 0
  let chain: AuditVerifyResult | undefined
  const bad = (firstBadSeq: number, reason: AuditVerifyFailure, message: string): void => { chain ??= { ok: false, firstBadSeq, reason, message } }
  const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity })
  for await (const line of lines) {
    if (line.trim() === '') continue
    const expectedSeq = (previous?.seq ?? 0) + 1
    let entry: AuditEntry
    try {
      if (line.length > EXPORT_LINE_CHARS_MAX) throw new Error(`line of ${line.length} characters`)
      entry = parseAuditEntry(JSON.parse(line))
    } catch (err) {
      bad(expectedSeq, 'malformed', `after entry ${expectedSeq - 1}: ${(err as Error).message}`)
      continue
    }
    const hash = hashAuditFieldsBytes(encodeAuditFields(entry))
    if (wanted.has(entry.seq)) hashes.set(entry.seq, hash)
    lastSeq = Math.max(lastSeq, entry.seq)
    if (previous === undefined) {
      firstSeq = entry.seq
      if (entry.seq === 1 && entry.prevHash !== GENESIS_HASH) bad(1, 'prev-hash-mismatch', 'entry 1 does not start the chain')
    } else if (entry.seq !== expectedSeq) {
      bad(expectedSeq, 'seq-gap', `entry ${expectedSeq} is missing (next is ${entry.seq})`)
    } else if (entry.prevHash !== previous.hash) {
      bad(entry.seq, 'prev-hash-mismatch', `entry ${entry.seq} does not chain on entry ${previous.seq}`)
    }
    const problem = entryProblem(entry, ownerHex)
    if (problem !== undefined) bad(entry.seq, problem, `entry ${entry.seq}: ${problem}`)
    previous = { seq: entry.seq, hash: entry.hash }
  }
  const count = previous === undefined ? 0 : previous.seq - firstSeq + 1
  return { chain: chain ?? { ok: true, count, headHash: previous?.hash ?? GENESIS_HASH }, firstSeq, lastSeq, hashes }
}

async function readJsonFile (file: string, bytesMax: number): Promise<unknown> {
  if (!existsSync(file)) throw new FedmeshError('file-missing', `no file ${file}`)
  const text = await readFile(file, 'utf8')
  if (text.length > bytesMax) throw new FedmeshError('anchors-invalid', `${file} is larger than ${bytesMax} bytes`)
  try {
    return JSON.parse(text)
  } catch {
    throw new FedmeshError('anchors-invalid', `${file} is not JSON`)
  }
}

function isCount (x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0
}

const DATA_DIR_OPTION = { 'data-dir': { type: 'string' } } as const

function sinceOption (seq: string | undefined, time: string | undefined): AuditFrom {
  if (seq !== undefined && time !== undefined) throw new UsageError('give --since or --since-time, not both')
  if (time !== undefined) {
    const timeMs = Date.parse(time)
    if (Number.isNaN(timeMs) || timeMs < 0) throw new UsageError(`--since-time ${JSON.stringify(time)} is not an ISO date`)
    return { timeMs }
  }
  const from = seq === undefined ? 1 : Number(seq)
  if (!/^\d{1,16}$/.test(seq ?? '1') || !Number.isSafeInteger(from)) throw new UsageError('--since must be a sequence number')
  return { seq: from }
}

/**
 * Opens the node's database without creating anything, runs fn, and always closes it; while the
 * node runs (the database is locked) it runs viaApi instead.
 */
async function withLog (dataDirOption: string | undefined, out: CommandOutput,
  fn: (storage: Storage, ownerHex: string) => Promise<number>, viaApi: (dataDir: string) => Promise<number>): Promise<number> {
  const dataDir = dataDirOption ?? defaultDataDir()
  if (!existsSync(join(dataDir, KEY_FILE))) {
    out.stderr(`fedmesh audit: no fedmesh node in ${dataDir} (no ${KEY_FILE})\n`)
    return 2
  }
  // The key file exists, so this only reads it (and checks its permissions).
  const { identity } = await loadOrCreateIdentity(dataDir)
  let storage: LevelStorage
  try {
    storage = await LevelStorage.open(join(dataDir, DB_DIR), { createIfMissing: false })
  } catch (err) {
    if (!(err instanceof FedmeshError)) throw err
    if (err.code === 'storage-locked') return await viaApi(dataDir)
    if (err.code === 'storage-missing') {
      out.stderr(`fedmesh audit: the node in ${dataDir} has no database yet (it has never been started)\n`)
    } else {
      out.stderr(`fedmesh audit: ${err.message}\n`)
    }
    return 2
  }
  try {
    return await fn(storage, identity.publicKeyHex)
  } finally {
    await storage.close()
  }
}

function humanLine (entry: AuditEntry): string {
  const detail = Object.entries(entry.detail).map(([key, value]) => `${key}=${printable(JSON.stringify(value))}`).join(' ')
  const peer = entry.peer === '' ? '-' : entry.peer.slice(0, 12)
  const digest = entry.digest === '' ? '-' : entry.digest.slice(0, 12)
  return [String(entry.seq).padStart(6), new Date(entry.timeMs).toISOString(), entry.action.padEnd(18), entry.decision.padEnd(6),
    `peer=${peer}`, `org=${entry.org === '' ? '-' : printable(entry.org)}`, `digest=${digest}`, detail].join('  ').trimEnd()
}

// Org names and details may come from peers: never let them drive the terminal.
function printable (text: string): string {
  return text.replace(/[\p{Cc}\p{Cf}]/gu, '\ufffd')
}

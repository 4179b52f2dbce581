import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import {
  AUDIT_TAIL_ENTRIES_MAX, auditEntryJson, auditSince, auditTail, verifyAuditLog, type AuditEntry, type AuditFrom, type AuditVerifyResult
} from '../audit.js'
import { callApi } from '../api-client.js'
import { DB_DIR, defaultDataDir } from '../data-dir.js'
import { FedmeshError } from '../errors.js'
import { KEY_FILE, loadOrCreateIdentity } from '../identity.js'
import { LevelStorage } from '../level-storage.js'
import type { Storage } from '../storage.js'

const USAGE = `usage:
  fedmesh audit tail [-n N] [--json] [--data-dir D]
      the last N audit entries (default 20, at most ${AUDIT_TAIL_ENTRIES_MAX}), oldest first
  fedmesh audit export [--since SEQ | --since-time ISO] [--data-dir D]
      entries from SEQ (or from a time on) as JSON lines
  fedmesh audit verify [--json] [--data-dir D]
      check every hash, signature and link: exit 0 intact, 1 with the first bad sequence number
While the node runs (its database is locked) the command reads through the node's admin API.`

export interface CommandOutput {
  stdout(text: string): void
  stderr(text: string): void
}

const processOutput: CommandOutput = {
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
  const { values } = parseArgs({ args, options: { json: { type: 'boolean' }, ...DATA_DIR_OPTION }, strict: true })
  const report = (result: AuditVerifyResult): number => {
    if (values.json === true) {
      out.stdout(JSON.stringify(result) + '\n')
    } else if (result.ok) {
      out.stdout(`ok: ${result.count} entries, head ${result.headHash}\n`)
    } else {
      out.stdout(`TAMPERED: first bad entry is seq ${result.firstBadSeq} (${result.reason}): ${result.message}\n`)
    }
    return result.ok ? 0 : 1
  }
  return await withLog(values['data-dir'], out, async (storage, ownerHex) => report(await verifyAuditLog(storage, ownerHex)), async (dataDir) => {
    const result = await callApi<AuditVerifyResult>(dataDir, '/v1/audit/verify')
    return result === undefined ? 2 : report(result)
  })
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

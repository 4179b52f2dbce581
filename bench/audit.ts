import '../node/runtime/polyfills.js'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { availableParallelism, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { AUDIT_BATCH_ENTRIES_MAX_DEFAULT, AuditLog, auditEntryKey, type AuditInput } from '../node/gate/audit.js'
import { NodeIdentity } from '../base/ed25519.js'
import { LevelStorage } from '../node/runtime/level-storage.js'
import { systemClock } from '../node/runtime/system-clock.js'
import { generateIdentity } from '../node/runtime/key-file.js'

// Audit appends per second with durability on (every batch synced), at several concurrencies, with
// group commit; beside them, the reference: level synced single puts of the same value size, in the
// same run, on the same disk. Each run is bounded in count and in time.
// Usage: npm run bench:audit [-- --time-ms-max 3000 --count-max 100000 --batch-entries-max 512]

const CONCURRENCIES = [1, 16, 64, 256]
const TARGET_APPENDS_PER_SECOND = 20_000
const args = process.argv.slice(2)
const option = (name: string, fallback: number): number => {
  const at = args.indexOf(name)
  return at === -1 ? fallback : Number(args[at + 1])
}
const timeMsMax = option('--time-ms-max', 3_000)
const countMax = option('--count-max', 100_000)
const batchEntriesMax = option('--batch-entries-max', AUDIT_BATCH_ENTRIES_MAX_DEFAULT)

const input: AuditInput = {
  action: 'envelope.in',
  decision: 'accept',
  peer: 'ab'.repeat(32),
  org: 'org-b',
  content: new TextEncoder().encode('{"task":"example","payload":"sanitized"}'),
  detail: { rule: 'allow-partners', reason: 'capability granted' }
}

// cpuMicrosPerOp counts every thread of this process (event loop, thread pool): unlike ops/s it
// hardly moves when other processes load the machine.
interface RunResult {
  concurrency: number, count: number, seconds: number, perSecond: number, latencyMsP50: number, latencyMsP99: number, cpuMicrosPerOp: number
}

/** Runs `concurrency` workers calling op() until countMax calls are done or timeMsMax has passed. */
async function measure (concurrency: number, op: (i: number) => Promise<unknown>): Promise<RunResult> {
  const latenciesMs: number[] = []
  let issued = 0
  const startCpu = process.cpuUsage()
  const startMs = performance.now()
  const worker = async (): Promise<void> => {
    while (issued < countMax && performance.now() - startMs < timeMsMax) {
      const i = issued++
      const opStartMs = performance.now()
      await op(i)
      latenciesMs.push(performance.now() - opStartMs)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  const seconds = (performance.now() - startMs) / 1000
  const cpu = process.cpuUsage(startCpu)
  latenciesMs.sort((a, b) => a - b)
  const at = (q: number): number => round(latenciesMs[Math.min(latenciesMs.length - 1, Math.floor(q * latenciesMs.length))] ?? 0)
  return { concurrency, count: latenciesMs.length, seconds: round(seconds), perSecond: Math.round(latenciesMs.length / seconds), latencyMsP50: at(0.5), latencyMsP99: at(0.99), cpuMicrosPerOp: round((cpu.user + cpu.system) / latenciesMs.length) }
}

function fixed (value: number, digits = 2, width = 7): string {
  return value.toFixed(digits).padStart(width)
}

function round (value: number): number {
  return Math.round(value * 1000) / 1000
}

async function withDir<T> (fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'fedmesh-bench-audit-'))
  try {
    return await fn(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

async function benchAudit (concurrency: number, identity: NodeIdentity): Promise<RunResult & { verifyPerSecond: number }> {
  return await withDir(async (dir) => {
    const storage = await LevelStorage.open(join(dir, 'db'))
    try {
      const log = await AuditLog.open({ storage, signer: identity, clock: systemClock, batchEntriesMax })
      const result = await measure(concurrency, async () => await log.append(input))
      const verifyStartMs = performance.now()
      const verified = await log.verify()
      if (!verified.ok || verified.count !== result.count) throw new Error(`benchmark log does not verify: ${JSON.stringify(verified)}`)
      const verifyPerSecond = Math.round(verified.count / ((performance.now() - verifyStartMs) / 1000))
      return { ...result, verifyPerSecond }
    } finally {
      await storage.close()
    }
  })
}

async function benchLevelPuts (concurrency: number, valueBytes: number): Promise<RunResult> {
  return await withDir(async (dir) => {
    const db = new Level<string, Uint8Array>(join(dir, 'db'), { valueEncoding: 'view' })
    await db.open()
    const value = new Uint8Array(valueBytes).fill(0x61)
    try {
      return await measure(concurrency, async (i) => await db.put(`audit/${String(i).padStart(20, '0')}`, value, { sync: true }))
    } finally {
      await db.close()
    }
  })
}

async function main (): Promise<void> {
  const identity = generateIdentity()
  const entryBytes = await withDir(async (dir) => {
    const storage = await LevelStorage.open(join(dir, 'db'))
    await (await AuditLog.open({ storage, signer: identity, clock: systemClock })).append(input)
    const stored = await storage.get(auditEntryKey(1))
    await storage.close()
    return stored!.length
  })
  console.log(`audit bench: entry ${entryBytes} bytes, batches <= ${batchEntriesMax}, each run <= ${countMax} ops and <= ${timeMsMax} ms, sync on`)
  console.log('concurrency  audit/s   p50 ms  p99 ms  cpu us | level put/s  p50 ms  cpu us | audit/put(same c)  audit/put(c=1)')
  const rows = []
  let putsAtOne: number | undefined
  for (const concurrency of CONCURRENCIES) {
    const audit = await benchAudit(concurrency, identity)
    const put = await benchLevelPuts(concurrency, entryBytes)
    putsAtOne ??= put.perSecond
    const ratioSameConcurrency = round(audit.perSecond / put.perSecond)
    const ratioPutsAtOne = round(audit.perSecond / putsAtOne)
    rows.push({ concurrency, audit, levelPut: put, ratioSameConcurrency, ratioPutsAtOne })
    console.log(`${String(concurrency).padStart(11)}  ${String(audit.perSecond).padStart(7)}  ${fixed(audit.latencyMsP50)} ${fixed(audit.latencyMsP99)} ${fixed(audit.cpuMicrosPerOp, 1)} |` +
      ` ${String(put.perSecond).padStart(11)} ${fixed(put.latencyMsP50)} ${fixed(put.cpuMicrosPerOp, 1)} | ${fixed(ratioSameConcurrency, 2, 17)} ${fixed(ratioPutsAtOne, 2, 15)}`)
  }
  const best = Math.max(...rows.map((r) => r.audit.perSecond))
  const verifyPerSecond = Math.max(...rows.map((r) => r.audit.verifyPerSecond))
  const [cores, load] = [availableParallelism(), loadavg()[0]!.toFixed(2)]
  console.log(`best ${best} appends/s (target >= ${TARGET_APPENDS_PER_SECOND}: ${best >= TARGET_APPENDS_PER_SECOND ? 'met' : 'NOT met'}); ` +
    `verify ${verifyPerSecond} entries/s; ${cores} cores, load average ${load} (other processes slow every number but cpu us)`)
  const results = {
    bench: 'audit',
    at: new Date().toISOString(),
    node: process.version,
    cores: availableParallelism(),
    loadAverage1m: loadavg()[0],
    entryBytes,
    timeMsMax,
    countMax,
    batchEntriesMax,
    targetAppendsPerSecond: TARGET_APPENDS_PER_SECOND,
    bestAppendsPerSecond: best,
    targetMet: best >= TARGET_APPENDS_PER_SECOND,
    verifyPerSecond,
    rows
  }
  await mkdir('bench/results', { recursive: true })
  await writeFile('bench/results/audit.json', JSON.stringify(results, null, 2) + '\n')
  console.log('wrote bench/results/audit.json')
}

await main()

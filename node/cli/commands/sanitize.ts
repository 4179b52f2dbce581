import { parseArgs } from 'node:util'
import { writeFile } from 'node:fs/promises'
import {
  CATEGORIES, createSanitizer, isCategory, isMode, SanitizeBlockedError, type Category, type Mode, type SanitizeReport
} from '../../../sanitize/index.js'
import { defaultDataDir, loadOrCreateSalt, SALT_FILE } from '../../runtime/data-dir.js'
import { FedmeshError } from '../../../base/errors.js'
import type { CommandOutput } from './audit.js'

export const USAGE = `usage:
  fedmesh sanitize [--mode CATEGORY=MODE]... [--text] [--json] [--report FILE] [--data-dir D] < input
      scrub JSON (or, with --text, plain text) from stdin for a cross-organisation send: the clean
      payload on stdout, the report (categories and counts, never values) on stderr (JSON with --json,
      or written to FILE with --report). Exit 0 sent clean, 3 blocked (nothing printed), 2 bad input.
      modes: mask, hash, drop, block, keep; hash pseudonyms use <data-dir>/${SALT_FILE} (created if missing)
      categories: ${CATEGORIES.join(', ')}`

export const STDIN_BYTES_MAX = 64 * 1024 * 1024
export const EXIT_BLOCKED = 3

export interface SanitizeCommandIo extends CommandOutput {
  readStdin(bytesMax: number): Promise<string>
}

const processIo: SanitizeCommandIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  readStdin: async (bytesMax) => {
    const chunks: Buffer[] = []
    let bytes = 0
    for await (const chunk of process.stdin) {
      bytes += (chunk as Buffer).length
      if (bytes > bytesMax) throw new UsageError(`stdin is larger than ${bytesMax} bytes`)
      chunks.push(chunk as Buffer)
    }
    return Buffer.concat(chunks).toString('utf8')
  }
}

class UsageError extends Error {}

export async function sanitizeCommand (args: string[], io: SanitizeCommandIo = processIo): Promise<number> {
  let options: CommandOptions | undefined
  try {
    options = parseOptions(args)
    const modes = options.modes
    const hashing = Object.values(modes).includes('hash')
    const salt = hashing ? await loadOrCreateSalt(options.dataDir) : undefined
    const sanitizer = createSanitizer({ modes, ...(salt === undefined ? {} : { salt }) })
    const input = await io.readStdin(STDIN_BYTES_MAX)
    // Nothing reaches stdout unless the whole payload passed: a block throws before any write.
    if (options.text) {
      const result = sanitizer.sanitizeText(input)
      io.stdout(result.value)
      await emitReport(result.report, options, io)
    } else {
      const result = sanitizer.sanitize(parseJson(input))
      io.stdout(JSON.stringify(result.value) + '\n')
      await emitReport(result.report, options, io)
    }
    return 0
  } catch (err) {
    if (err instanceof SanitizeBlockedError && options !== undefined) {
      await emitReport(err.report, options, io)
      return EXIT_BLOCKED
    }
    if (err instanceof FedmeshError || err instanceof UsageError || isParseArgsError(err)) {
      io.stderr(`fedmesh sanitize: ${(err as Error).message}\n`)
      if (!(err instanceof FedmeshError)) io.stderr(USAGE + '\n')
      return 2
    }
    throw err
  }
}

interface CommandOptions {
  modes: Partial<Record<Category, Mode>>
  text: boolean
  json: boolean
  reportFile: string | undefined
  dataDir: string
}

function parseOptions (args: string[]): CommandOptions {
  const { values } = parseArgs({
    args,
    options: {
      mode: { type: 'string', multiple: true },
      text: { type: 'boolean' },
      json: { type: 'boolean' },
      report: { type: 'string' },
      'data-dir': { type: 'string' }
    },
    strict: true
  })
  const modes: Partial<Record<Category, Mode>> = {}
  for (const override of values.mode ?? []) {
    const [category = '', mode = '', extra] = override.split('=')
    if (extra !== undefined || !isCategory(category) || !isMode(mode)) {
      throw new UsageError(`--mode takes CATEGORY=MODE, got ${JSON.stringify(override)}`)
    }
    modes[category] = mode
  }
  return {
    modes,
    text: values.text === true,
    json: values.json === true,
    reportFile: values.report,
    dataDir: values['data-dir'] ?? defaultDataDir()
  }
}

function parseJson (input: string): unknown {
  try {
    return JSON.parse(input)
  } catch (err) {
    throw new UsageError(`stdin is not JSON: ${(err as Error).message}`)
  }
}

async function emitReport (report: SanitizeReport, options: CommandOptions, io: SanitizeCommandIo): Promise<void> {
  const json = JSON.stringify(report)
  if (options.reportFile !== undefined) await writeFile(options.reportFile, json + '\n', { mode: 0o600 })
  else io.stderr((options.json ? json : humanReport(report)) + '\n')
}

function humanReport (report: SanitizeReport): string {
  const counts = Object.entries(report.redactions).map(([category, count]) => `${category} ${count}`)
  const total = Object.values(report.redactions).reduce((sum, count) => sum + count, 0)
  if (report.blocked) return `sanitize: BLOCKED, nothing sent (${counts.join(', ')})`
  return total === 0 ? 'sanitize: clean, 0 redactions' : `sanitize: ${total} redactions (${counts.join(', ')})`
}

function isParseArgsError (err: unknown): boolean {
  return (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true
}

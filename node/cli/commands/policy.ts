import { homedir } from 'node:os'
import { join } from 'node:path'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { DEFAULT_TRUST_OPTIONS } from '../../../membership/trust.js'
import { loadPolicyFile, POLICY_FILE } from '../../gate/policy-file.js'
import { PolicyError, POLICY_TEXT_BYTES_MAX, type Policy } from '../../gate/policy.js'

export const USAGE = `usage:
  fedmesh policy check FILE [--json]
      validate a policy file: exit 0 "ok: N capabilities, M rules", exit 1 "FILE:LINE: reason"
  fedmesh policy explain --peer KEY --org ORG --capability C [--payload JSON] [--trust X]
                         [--data-dir D | --file F] [--json]
      print the decision for one request, the rule that made it and why
      (exit 0 allow, 1 deny; a missing policy file denies everything)`

export async function policyCommand (args: string[]): Promise<number> {
  const [sub, ...rest] = args
  try {
    if (sub === 'check') return await check(rest)
    if (sub === 'explain') return await explain(rest)
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    console.error(`fedmesh policy: ${err.message}`)
  }
  console.error(USAGE)
  return 2
}

class UsageError extends Error {}

async function check (args: string[]): Promise<number> {
  const options = { json: { type: 'boolean' } } as const
  const { values, positionals } = parse({ args, options, allowPositionals: true, strict: true })
  if (positionals.length !== 1) throw new UsageError('check takes exactly one FILE')
  const loaded = await load(positionals[0]!, values.json === true)
  if (loaded === undefined) return 1
  const { policy, text } = loaded
  if (text === undefined) return printError(new PolicyError(positionals[0]!, 1, 'no such file'), values.json === true)
  const result = { ok: true, file: positionals[0], capabilities: policy.capabilityCount, rules: policy.ruleCount }
  const summary = `ok: ${result.capabilities} capabilities, ${result.rules} rules`
  console.log(values.json === true ? JSON.stringify(result) : summary)
  return 0
}

async function explain (args: string[]): Promise<number> {
  const { values } = parse({
    args,
    strict: true,
    options: {
      peer: { type: 'string' },
      org: { type: 'string' },
      capability: { type: 'string' },
      payload: { type: 'string' },
      trust: { type: 'string' },
      'data-dir': { type: 'string' },
      file: { type: 'string' },
      json: { type: 'boolean' }
    }
  })
  const { peer, org, capability } = values
  if (typeof peer !== 'string' || typeof org !== 'string' || typeof capability !== 'string') {
    throw new UsageError('explain needs --peer, --org and --capability')
  }
  if (!/^[0-9a-fA-F]{64}$/.test(peer)) throw new UsageError('--peer must be a 64-hex ed25519 public key')
  if (values.file !== undefined && values['data-dir'] !== undefined) {
    throw new UsageError('give --data-dir or --file, not both')
  }
  const trust = values.trust === undefined ? DEFAULT_TRUST_OPTIONS.prior : Number(values.trust)
  if (!(trust >= 0 && trust <= 1)) throw new UsageError('--trust must be a number in [0, 1]')
  const payloadText = values.payload ?? '{}'
  if (Buffer.byteLength(payloadText) > POLICY_TEXT_BYTES_MAX) throw new UsageError('--payload is too large')
  let payload: unknown
  try {
    payload = JSON.parse(payloadText)
  } catch {
    throw new UsageError('--payload must be JSON')
  }
  const path = values.file ?? join(dataDir(values['data-dir']), POLICY_FILE)
  const json = values.json === true
  const loaded = await load(path, json)
  if (loaded === undefined) return 1
  const request = { peer: peer.toLowerCase(), org, capability, payload, payloadBytes: Buffer.byteLength(payloadText) }
  const result = loaded.policy.decide(request, { nowMs: 0, trust })
  if (json) {
    console.log(JSON.stringify({ ...result, policy: path, policyFound: loaded.text !== undefined }))
  } else {
    console.log(`${result.decision} (rule ${result.rule})\n${result.reason}`)
    if (loaded.text === undefined) console.log(`(no policy file at ${path}: every request is denied)`)
  }
  return result.decision === 'allow' ? 0 : 1
}

function parse<T extends ParseArgsConfig> (config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config)
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}

async function load (path: string, json: boolean): Promise<{ policy: Policy, text: string | undefined } | undefined> {
  try {
    return await loadPolicyFile(path)
  } catch (err) {
    if (!(err instanceof PolicyError)) throw err
    printError(err, json)
    return undefined
  }
}

function printError (err: PolicyError, json: boolean): number {
  if (json) console.log(JSON.stringify({ ok: false, code: err.code, file: err.source, line: err.line, reason: err.reason }))
  else console.error(err.message)
  return 1
}

function dataDir (flag: unknown): string {
  return typeof flag === 'string' ? flag : process.env.FEDMESH_HOME ?? join(homedir(), '.fedmesh')
}

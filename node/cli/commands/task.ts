import { parseArgs } from 'node:util'
import { callApi } from '../../api/client.js'
import { defaultDataDir } from '../../runtime/data-dir.js'
import type { FederationReceipt } from '../../federation/federation.js'
import type { TaskReceipt } from '../../org/task-service.js'
import type { Task } from '../../org/task-board.js'

export const USAGE = `usage (through the running node's admin API):
  fedmesh task propose --title T --capability C [--payload JSON] [--request-id ID]
  fedmesh task propose --federation --title T --capability C [--payload JSON] [--target ORG]
      ordered by PBFT into every member org's board; only ORG (name or root) may claim it
  fedmesh task list [--status open|claimed|done|failed] [--after INDEX] [--limit N] [--linearizable]
  fedmesh task get ID [--linearizable]
  fedmesh task claim ID [--assignee A] [--request-id ID]
  fedmesh task complete ID [--result JSON] [--assignee A] [--request-id ID]
  fedmesh task fail ID [--result JSON] [--assignee A] [--request-id ID]
  fedmesh task claim|complete|fail REF --federation [--result JSON]
      a federated task (REF = epoch.seq.position, its copy's payload.federation): through PBFT,
      applied to every org's copy; the result reaches the proposer's org too
common: [--data-dir D] [--json]. Writes print once committed and applied; --request-id makes a retry
apply once. --linearizable reads wait for a ReadIndex barrier (otherwise this node's board as is).`

const OPTIONS = {
  'data-dir': { type: 'string' },
  json: { type: 'boolean' },
  title: { type: 'string' },
  capability: { type: 'string' },
  payload: { type: 'string' },
  result: { type: 'string' },
  assignee: { type: 'string' },
  'request-id': { type: 'string' },
  status: { type: 'string' },
  after: { type: 'string' },
  limit: { type: 'string' },
  linearizable: { type: 'boolean' },
  federation: { type: 'boolean' },
  target: { type: 'string' }
} as const

class UsageError extends Error {}

export async function taskCommand (args: string[]): Promise<number> {
  const [sub, ...rest] = args
  try {
    const { values, positionals } = parseArgs({ args: rest, options: OPTIONS, allowPositionals: true, strict: true })
    const dataDir = values['data-dir'] ?? defaultDataDir()
    const json = values.json === true
    const id = (): string => {
      if (positionals.length !== 1) throw new UsageError(`${sub ?? ''} takes exactly one task ID`)
      return encodeURIComponent(positionals[0]!)
    }
    const write = { ...(values['request-id'] !== undefined ? { requestId: values['request-id'] } : {}), ...(values.assignee !== undefined ? { assignee: values.assignee } : {}) }
    const read = values.linearizable === true ? 'linearizable=1' : ''
    switch (sub) {
      case 'propose':
        if (values.title === undefined || values.capability === undefined) throw new UsageError('propose needs --title and --capability')
        if (values.federation === true) {
          const body = { title: values.title, capability: values.capability, payload: jsonFlag(values.payload, '--payload'), ...(values.target !== undefined ? { target: values.target } : {}) }
          return federationReceipt(await callApi(dataDir, '/v1/federation/tasks', { body }), json)
        }
        return receipt(await callApi(dataDir, '/v1/tasks', { body: { title: values.title, capability: values.capability, payload: jsonFlag(values.payload, '--payload'), ...write } }), json)
      case 'claim':
        if (values.federation === true) return federationReceipt(await callApi(dataDir, `/v1/federation/tasks/${id()}/claim`, { body: {} }), json)
        return receipt(await callApi(dataDir, `/v1/tasks/${id()}/claim`, { body: write }), json)
      case 'complete':
      case 'fail':
        if (values.federation === true) return federationReceipt(await callApi(dataDir, `/v1/federation/tasks/${id()}/${sub}`, { body: { result: jsonFlag(values.result, '--result') } }), json)
        return receipt(await callApi(dataDir, `/v1/tasks/${id()}/${sub}`, { body: { result: jsonFlag(values.result, '--result'), ...write } }), json)
      case 'get': {
        const task = await callApi<Task>(dataDir, `/v1/tasks/${id()}${read === '' ? '' : `?${read}`}`)
        if (task === undefined) return 1
        process.stdout.write(json ? JSON.stringify(task) + '\n' : describe(task, true))
        return 0
      }
      case 'list': {
        const query = new URLSearchParams()
        if (values.status !== undefined) query.set('status', values.status)
        if (values.after !== undefined) query.set('after', values.after)
        if (values.limit !== undefined) query.set('limit', values.limit)
        if (read !== '') query.set('linearizable', '1')
        const tasks = await callApi<Task[]>(dataDir, `/v1/tasks?${query.toString()}`)
        if (tasks === undefined) return 1
        process.stdout.write(json ? JSON.stringify(tasks) + '\n' : tasks.map((t) => describe(t, false)).join(''))
        return 0
      }
      default:
        throw new UsageError(sub === undefined ? 'missing subcommand' : `unknown subcommand ${JSON.stringify(sub)}`)
    }
  } catch (err) {
    if (!(err instanceof UsageError) && (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') !== true) throw err
    process.stderr.write(`fedmesh task: ${(err as Error).message}\n${USAGE}\n`)
    return 2
  }
}

function jsonFlag (text: string | undefined, flag: string): unknown {
  if (text === undefined) return null
  try {
    return JSON.parse(text)
  } catch {
    throw new UsageError(`${flag} must be JSON (quote strings: '"text"')`)
  }
}

function receipt (r: TaskReceipt | undefined, json: boolean): number {
  if (r === undefined) return 1
  process.stdout.write(json ? JSON.stringify(r) + '\n' : `${r.taskId}  committed at index ${r.index}, term ${r.term}\n`)
  return 0
}

function describe (t: Task, full: boolean): string {
  const line = `${t.id}  ${t.status.padEnd(7)}  ${t.capability}  ${JSON.stringify(t.title)}${t.assignee === null ? '' : `  assignee ${t.assignee}`}\n`
  if (!full) return line
  return line + `  proposer ${t.proposer}\n  payload  ${JSON.stringify(t.payload)}\n  result   ${JSON.stringify(t.result)}\n  index    created ${t.createdIndex}, updated ${t.updatedIndex}\n`
}

/** --federation: answered once f+1 orgs applied the task at one PBFT sequence (every org's board gets it). */
function federationReceipt (r: FederationReceipt | undefined, json: boolean): number {
  if (r === undefined) return 1
  process.stdout.write(json
    ? JSON.stringify(r) + '\n'
    : `${r.outcome} at federation ${r.epoch}.${r.seq}.${r.position}${r.reason !== '' ? ` (${r.reason})` : ''}${r.outcome === 'applied' ? '' : r.accepted ? '' : ' — refused alike by every org'}\n`)
  return r.accepted ? 0 : 1
}

import { FedmeshError } from '../../base/errors.js'

// The task commands of an org's Raft log, built and validated from untrusted input before anything
// is proposed and again on apply, and what applying one produced. Pure field checks with no state
// behind them, below the board, so the federation's op decoder (federation/ops.ts) applies the very
// same bounds to a cross-org task without importing the board.

export interface ProposeCommand { op: 'propose', title: string, capability: string, payload: string, proposer: string }
export interface ClaimCommand { op: 'claim', id: string, assignee: string }
export interface FinishCommand { op: 'complete' | 'fail', id: string, assignee: string, result: string }
export type TaskCommand = ProposeCommand | ClaimCommand | FinishCommand

export type TaskErrorCode = 'task-invalid' | 'task-not-found' | 'task-conflict' | 'task-board-full' | 'task-snapshot-malformed'

export class TaskError extends FedmeshError {
  constructor (code: TaskErrorCode, message: string) {
    super(code, message)
    this.name = 'TaskError'
  }
}

/** What applying a command produced; a duplicate gets the first application's outcome (taskId '' for PBFT commands). */
export type TaskOutcome =
  /** results: one per request of a federation batch (what the org's replica replies). */
  | { ok: true, taskId: string, index: number, term: number, results?: Uint8Array[], digest?: Uint8Array }
  | { ok: false, code: TaskErrorCode, message: string }

export const TITLE_LENGTH_MAX = 256
export const ASSIGNEE_LENGTH_MAX = 128
export const JSON_BYTES_MAX = 64 * 1024
const CAPABILITY_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/
/** t<log index>, or t<log index>-<position> for the tasks of one federation batch. */
const TASK_ID = /^t[1-9][0-9]{0,15}(-[0-9]{1,5})?$/
const PRINTABLE = /^[^\p{Cc}]+$/u

export function proposeCommand (input: { title?: unknown, capability?: unknown, payload?: unknown }, proposer: string): ProposeCommand {
  // Capabilities are case-insensitive names: 'Ops' is proposed as 'ops' (the log and the wire hold lower case only).
  const named = typeof input.capability === 'string' ? input.capability.toLowerCase() : input.capability
  return { op: 'propose', title: text(input.title, 'title', TITLE_LENGTH_MAX), capability: capability(named), payload: json(input.payload ?? null, 'payload'), proposer }
}

export function claimCommand (id: unknown, assignee: unknown): ClaimCommand {
  return { op: 'claim', id: taskId(id), assignee: text(assignee, 'assignee', ASSIGNEE_LENGTH_MAX) }
}

export function finishCommand (op: 'complete' | 'fail', id: unknown, assignee: unknown, result: unknown): FinishCommand {
  return { op, id: taskId(id), assignee: text(assignee, 'assignee', ASSIGNEE_LENGTH_MAX), result: json(result ?? null, 'result') }
}

/** The command's fields, name first (the org state machine encodes the log entry). */
export function encodeTaskCommand (cmd: TaskCommand): unknown[] {
  if (cmd.op === 'propose') return ['propose', cmd.title, cmd.capability, cmd.payload, cmd.proposer]
  if (cmd.op === 'claim') return ['claim', cmd.id, cmd.assignee]
  return [cmd.op, cmd.id, cmd.assignee, cmd.result]
}

/** A task command from a log entry's decoded fields: the same checks as on input, so every node refuses alike. */
export function decodeTaskCommand (v: unknown[]): TaskCommand {
  if (v[0] === 'propose' && v.length === 5) {
    return { op: 'propose', title: text(v[1], 'title', TITLE_LENGTH_MAX), capability: capability(v[2]), payload: jsonText(v[3], 'payload'), proposer: text(v[4], 'proposer', ASSIGNEE_LENGTH_MAX) }
  }
  if (v[0] === 'claim' && v.length === 3) return claimCommand(v[1], v[2])
  if ((v[0] === 'complete' || v[0] === 'fail') && v.length === 4) {
    return { op: v[0], id: taskId(v[1]), assignee: text(v[2], 'assignee', ASSIGNEE_LENGTH_MAX), result: jsonText(v[3], 'result') }
  }
  throw invalid('unknown command')
}

// ---- field checks (also of the board's snapshot rows) ----

export function invalid (message: string): TaskError {
  return new TaskError('task-invalid', message)
}

export function text (x: unknown, what: string, lengthMax: number): string {
  if (typeof x !== 'string' || x.length === 0 || x.length > lengthMax || !PRINTABLE.test(x)) {
    throw invalid(`${what} must be a string of 1-${lengthMax} printable characters`)
  }
  return x
}

export function capability (x: unknown): string {
  if (typeof x !== 'string' || !CAPABILITY_NAME.test(x)) throw invalid(`capability must match ${CAPABILITY_NAME.source}`)
  return x
}

export function taskId (x: unknown): string {
  if (typeof x !== 'string' || !TASK_ID.test(x)) throw invalid(`task id must match ${TASK_ID.source}`)
  return x
}

/** A JSON value as its text, bounded. */
function json (value: unknown, what: string): string {
  let t: string | undefined
  try {
    t = JSON.stringify(value)
  } catch {
    throw invalid(`${what} must be JSON`)
  }
  if (t === undefined) throw invalid(`${what} must be JSON`)
  if (Buffer.byteLength(t) > JSON_BYTES_MAX) throw invalid(`${what} exceeds ${JSON_BYTES_MAX} bytes of JSON`)
  return t
}

export function jsonText (x: unknown, what: string, bytesMax = JSON_BYTES_MAX): string {
  if (typeof x !== 'string' || Buffer.byteLength(x) > bytesMax) throw invalid(`${what} must be JSON text of at most ${bytesMax} bytes`)
  try {
    JSON.parse(x)
  } catch {
    throw invalid(`${what} is not JSON`)
  }
  return x
}

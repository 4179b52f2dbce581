// Linearizability checking of a recorded register history (Wing & Gong's search with Lowe's
// just-in-time linearisation and Porcupine's memoisation of (linearised set, state)), applied per
// key: a history is linearizable iff each key's sub-history is (P-compositionality). The search is
// bounded; running out of budget yields 'unknown', never a false alarm.

export type RegisterInput =
  | { kind: 'get' }
  | { kind: 'put', value: string }
  | { kind: 'cas', from: string | null, to: string }
export type RegisterOutput = string | null | boolean | 'ok'

export interface Operation {
  client: string
  key: string
  /** Tick of the first invocation and of the response; a response tick is never before the call. */
  callTick: number
  returnTick: number
  input: RegisterInput
  output: RegisterOutput
}

export type Verdict = { result: 'ok' } | { result: 'unknown', key: string } | { result: 'illegal', key: string, operations: Operation[] }

type State = string | null

function step (state: State, input: RegisterInput, output: RegisterOutput): State | undefined {
  if (input.kind === 'get') return output === state ? state : undefined
  if (input.kind === 'put') return input.value
  const swapped = state === input.from
  if (output !== swapped) return undefined
  return swapped ? input.to : state
}

interface Event { op: number, isCall: boolean, prev: Event | undefined, next: Event | undefined, match: Event | undefined }

export function checkHistory (operations: Operation[], stepsMax = 200_000): Verdict {
  const byKey = new Map<string, Operation[]>()
  for (const op of operations) {
    const list = byKey.get(op.key) ?? []
    list.push(op)
    byKey.set(op.key, list)
  }
  for (const key of [...byKey.keys()].sort()) {
    const ops = byKey.get(key)!
    const verdict = checkRegister(ops, stepsMax)
    if (verdict === 'illegal') return { result: 'illegal', key, operations: ops }
    if (verdict === 'unknown') return { result: 'unknown', key }
  }
  return { result: 'ok' }
}

function checkRegister (ops: Operation[], stepsMax: number): 'ok' | 'illegal' | 'unknown' {
  // Calls sort before returns at the same tick: same-tick operations count as concurrent.
  const points = ops.flatMap((op, i) => [{ tick: op.callTick, isCall: true, op: i }, { tick: op.returnTick, isCall: false, op: i }])
    .sort((a, b) => (a.tick - b.tick) || (Number(b.isCall) - Number(a.isCall)) || (a.op - b.op))
  const head: Event = { op: -1, isCall: false, prev: undefined, next: undefined, match: undefined }
  let tail = head
  const calls = new Map<number, Event>()
  for (const p of points) {
    const e: Event = { op: p.op, isCall: p.isCall, prev: tail, next: undefined, match: undefined }
    tail.next = e
    tail = e
    if (p.isCall) calls.set(p.op, e)
    else calls.get(p.op)!.match = e
  }
  const lift = (call: Event): void => {
    call.prev!.next = call.next
    if (call.next !== undefined) call.next.prev = call.prev
    const ret = call.match!
    ret.prev!.next = ret.next
    if (ret.next !== undefined) ret.next.prev = ret.prev
  }
  const unlift = (call: Event): void => {
    const ret = call.match!
    ret.prev!.next = ret
    if (ret.next !== undefined) ret.next.prev = ret
    call.prev!.next = call
    if (call.next !== undefined) call.next.prev = call
  }
  const seen = new Set<string>()
  const stack: Array<{ call: Event, state: State }> = []
  let linearized = 0n
  let state: State = null
  let entry = head.next
  for (let steps = 0; head.next !== undefined; steps++) {
    if (steps > stepsMax) return 'unknown'
    if (entry === undefined) return 'illegal'
    if (entry.isCall) {
      const op = ops[entry.op]!
      const next = step(state, op.input, op.output)
      const bits = linearized | (1n << BigInt(entry.op))
      const memo = `${bits.toString(36)}|${next ?? '\u0000'}`
      if (next !== undefined && !seen.has(memo)) {
        seen.add(memo)
        stack.push({ call: entry, state })
        state = next
        linearized = bits
        lift(entry)
        entry = head.next
      } else {
        entry = entry.next
      }
    } else {
      const top = stack.pop()
      if (top === undefined) return 'illegal'
      state = top.state
      linearized &= ~(1n << BigInt(top.call.op))
      unlift(top.call)
      entry = top.call.next
    }
  }
  return 'ok'
}

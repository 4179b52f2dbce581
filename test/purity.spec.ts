import assert from 'node:assert/strict'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'

// The protocol cores and the simulator are deterministic: time and randomness come in as arguments or
// through injected Clock/Rng. This keeps them so by grepping for the ambient sources.
const PURE_FILES = ['node/gate/policy.ts', 'node/gate/rate-limiter.ts', 'node/gate/audit-entry.ts', 'node/org/task-board.ts', 'node/federation/state.ts', 'node/federation/ops.ts']
const PURE_DIRS = ['base', 'consensus', 'membership', 'sanitize', 'simulations']
// The simulator's command-line entry points time the sweep and may draw a random first seed.
const CLI_ENTRY_POINTS = ['simulations/run.ts', 'simulations/pbft-run.ts', 'simulations/sweep.ts']
// The simulated world's one touch of the event loop: its scheduler settles promise jobs with a setImmediate turn.
const SETTLE_TURN = { file: 'simulations/world/scheduler.ts', text: 'setImmediate(resolve)' }
const FORBIDDEN = /\bDate\.now\(|new Date\(\s*\)|\bperformance\.now\(|\bprocess\.hrtime|\bMath\.random\(|\bsetTimeout\(|\bsetInterval\(|\bsetImmediate\(|\brandomBytes\(|\brandomInt\(|\bgetRandomValues\(|from 'node:fs|from 'node:net|from 'node:http/

async function tsFiles (dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])
  return entries.filter((e) => e.isFile() && e.name.endsWith('.ts')).map((e) => join(e.parentPath, e.name))
}

describe('pure cores', () => {
  it('never read the clock, randomness or the outside world', async () => {
    const files = [...PURE_FILES, ...(await Promise.all(PURE_DIRS.map(tsFiles))).flat()].filter((f) => !CLI_ENTRY_POINTS.includes(f))
    assert.ok(files.length >= PURE_FILES.length)
    const offenders: string[] = []
    for (const file of files) {
      const lines = (await readFile(file, 'utf8')).split('\n')
      lines.forEach((line, i) => {
        const settling = file === SETTLE_TURN.file && line.includes(SETTLE_TURN.text)
        if (!line.trimStart().startsWith('//') && FORBIDDEN.test(line) && !settling) offenders.push(`${file}:${i + 1}: ${line.trim()}`)
      })
    }
    assert.deepEqual(offenders, [])
  })
})

import assert from 'node:assert/strict'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'

// The Raft core and the simulator must be deterministic: time and randomness come in only through
// ticks and an injected Rng. (simulations/run.ts may pick a first seed through node/system-clock.)

const FORBIDDEN = /Date\.now|new Date\(|setTimeout|setInterval|setImmediate|Math\.random|crypto\.random|randomBytes|randomInt|performance\.now|process\.hrtime/

function files (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => d.isDirectory() ? files(join(dir, d.name)) : d.name.endsWith('.ts') ? [join(dir, d.name)] : [])
}

describe('determinism of the Raft core and the simulator', () => {
  it('reads no clock and no global randomness', () => {
    const checked = [...files('consensus/raft'), 'consensus/types.ts', ...files('simulations').filter((f) => !f.endsWith('run.ts'))]
    assert.ok(checked.length > 10)
    const offenders = checked.filter((f) => FORBIDDEN.test(readFileSync(f, 'utf8')))
    assert.deepEqual(offenders, [])
  })
})

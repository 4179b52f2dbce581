import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

// The layers point one way. base/ holds pure helpers and the seam interfaces; the cores
// (consensus/, membership/, sanitize/) and base/ never reach node/, the file system, sockets,
// timers or libp2p — through any chain of imports, type-only ones included; nothing imports in a
// cycle; and the simulators run the production drivers rather than copies of them.

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const SOURCE_DIRS = ['base', 'consensus', 'membership', 'sanitize', 'node', 'simulations']
const LOWER_DIRS = ['base', 'consensus', 'membership', 'sanitize']
const FORBIDDEN_PACKAGES = /^(node:(fs|fs\/promises|net|http|https|dgram|child_process|timers|timers\/promises|worker_threads)|libp2p|@libp2p\/|@chainsafe\/|@multiformats\/|it-pipe|it-length-prefixed|level|classic-level|prom-client)(\/|$)/
const SPECIFIER = /(?:^|[\s;])(?:import|export)\s+(?:type\s+)?(?:[^'"]*?\sfrom\s+)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g

interface Graph { local: Map<string, string[]>, external: Map<string, string[]> }

function sourceFiles (dir: string): string[] {
  const abs = join(ROOT, dir)
  if (!existsSync(abs)) return []
  return readdirSync(abs, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts'))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)))
}

function importGraph (): Graph {
  const graph: Graph = { local: new Map(), external: new Map() }
  for (const file of SOURCE_DIRS.flatMap(sourceFiles)) {
    const text = readFileSync(join(ROOT, file), 'utf8').replace(/^\s*\/\/.*$/gm, '')
    const local: string[] = []
    const external: string[] = []
    for (const m of text.matchAll(SPECIFIER)) {
      const spec = m[1] ?? m[2]!
      if (spec.startsWith('.')) local.push(relative(ROOT, resolve(ROOT, dirname(file), spec.replace(/\.js$/, '.ts'))))
      else external.push(spec)
    }
    graph.local.set(file, local)
    graph.external.set(file, external)
  }
  return graph
}

/** Every file reachable from `start`, with the chain that reaches it. */
function reachable (graph: Graph, start: string): Map<string, string[]> {
  const chains = new Map<string, string[]>([[start, [start]]])
  const queue = [start]
  while (queue.length > 0) {
    const file = queue.shift()!
    for (const next of graph.local.get(file) ?? []) {
      if (chains.has(next)) continue
      chains.set(next, [...chains.get(file)!, next])
      queue.push(next)
    }
  }
  return chains
}

/** Strongly connected components of more than one file (Tarjan), or a file importing itself. */
function cycles (graph: Graph): string[][] {
  let index = 0
  const indexOf = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const found: string[][] = []
  const visit = (v: string): void => {
    indexOf.set(v, index); low.set(v, index); index++
    stack.push(v); onStack.add(v)
    for (const w of graph.local.get(v) ?? []) {
      if (!graph.local.has(w)) continue
      if (!indexOf.has(w)) { visit(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)) } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, indexOf.get(w)!))
    }
    if (low.get(v) === indexOf.get(v)) {
      const component: string[] = []
      let w: string
      do { w = stack.pop()!; onStack.delete(w); component.push(w) } while (w !== v)
      if (component.length > 1 || (graph.local.get(v) ?? []).includes(v)) found.push(component.sort())
    }
  }
  for (const v of graph.local.keys()) if (!indexOf.has(v)) visit(v)
  return found
}

describe('layering: the import graph', () => {
  const graph = importGraph()

  it('reads the whole tree', () => {
    assert.ok(graph.local.size > 90, `only ${graph.local.size} files found`)
    for (const dir of SOURCE_DIRS) assert.ok([...graph.local.keys()].some((f) => f.startsWith(`${dir}/`)), `nothing under ${dir}/`)
  })

  it('keeps base/ and the cores off node/, I/O, timers and libp2p, transitively', () => {
    const offenders: string[] = []
    for (const file of LOWER_DIRS.flatMap(sourceFiles)) {
      for (const [reached, chain] of reachable(graph, file)) {
        if (reached.startsWith('node/')) offenders.push(chain.join(' → '))
        for (const pkg of graph.external.get(reached) ?? []) if (FORBIDDEN_PACKAGES.test(pkg)) offenders.push(`${chain.join(' → ')} → ${pkg}`)
      }
    }
    assert.deepEqual([...new Set(offenders)], [])
  })

  it('has no import cycles', () => {
    assert.deepEqual(cycles(graph), [])
  })

  it('catches a cycle and a layering breach when there is one (the checks can fail)', () => {
    const bad: Graph = { local: new Map([['consensus/a.ts', ['base/b.ts']], ['base/b.ts', ['node/c.ts']], ['node/c.ts', ['consensus/a.ts']]]), external: new Map() }
    assert.equal(cycles(bad).length, 1)
    assert.ok([...reachable(bad, 'consensus/a.ts').keys()].includes('node/c.ts'))
  })

  it('runs the production drivers in the simulators', () => {
    const simulated = new Set(sourceFiles('simulations').flatMap((f) => [...reachable(graph, f).keys()]))
    for (const driver of ['consensus/raft/driver.ts', 'consensus/pbft/driver.ts', 'consensus/pbft/promise-log.ts', 'node/org/org-state-machine.ts', 'node/federation/federation.ts']) {
      assert.ok(simulated.has(driver), `no simulator runs ${driver}`)
    }
  })
})

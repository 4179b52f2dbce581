import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LevelStorage } from '../../node/runtime/level-storage.js'
import { MemoryStorage } from '../../base/memory-storage.js'
import type { Storage } from '../../base/storage.js'
import { FedmeshError } from '../../base/errors.js'

// One suite, every implementation of Storage (js-libp2p's compliance-suite shape).
interface StorageSetup {
  open(): Promise<Storage>
  /** Stops the storage as the given kind of stop allows, and returns a fresh handle on its data. */
  restart(storage: Storage): Promise<Storage>
  cleanup(): Promise<void>
}

const bytes = (...values: number[]): Uint8Array => Uint8Array.from(values)
const text = (value: string): Uint8Array => new TextEncoder().encode(value)

async function collect (iterable: AsyncIterable<[string, Uint8Array]>): Promise<string[]> {
  const keys: string[] = []
  for await (const [key] of iterable) keys.push(key)
  return keys
}

function storageCompliance (name: string, setup: () => StorageSetup): void {
  describe(`Storage compliance: ${name}`, () => {
    let env: StorageSetup
    let storage: Storage

    beforeEach(async () => {
      env = setup()
      storage = await env.open()
    })
    afterEach(async () => {
      await storage.close()
      await env.cleanup()
    })

    it('gets what was put and nothing after a delete', async () => {
      assert.equal(await storage.get('k'), undefined)
      await storage.batch([{ type: 'put', key: 'k', value: bytes(1, 2, 3) }])
      assert.deepEqual(await storage.get('k'), bytes(1, 2, 3))
      await storage.batch([{ type: 'put', key: 'k', value: bytes(9) }])
      assert.deepEqual(await storage.get('k'), bytes(9))
      await storage.batch([{ type: 'del', key: 'k' }])
      assert.equal(await storage.get('k'), undefined)
    })

    it('returns plain Uint8Arrays, including empty values', async () => {
      await storage.batch([{ type: 'put', key: 'empty', value: new Uint8Array(0) }])
      const value = await storage.get('empty')
      assert.ok(value !== undefined)
      assert.equal(Object.getPrototypeOf(value), Uint8Array.prototype)
      assert.equal(value.length, 0)
    })

    it('applies a batch in order and all at once', async () => {
      await storage.batch([{ type: 'put', key: 'x', value: bytes(0) }])
      await storage.batch([
        { type: 'put', key: 'a', value: bytes(1) },
        { type: 'del', key: 'x' },
        { type: 'put', key: 'b', value: bytes(2) },
        { type: 'put', key: 'a', value: bytes(3) }
      ])
      assert.deepEqual(await storage.get('a'), bytes(3))
      assert.deepEqual(await storage.get('b'), bytes(2))
      assert.equal(await storage.get('x'), undefined)
    })

    it('writes nothing from a batch that fails', async () => {
      const bad = [
        { type: 'put', key: 'first', value: bytes(1) },
        { type: 'put', key: 'second', value: null }
      ] as unknown as Parameters<Storage['batch']>[0]
      await assert.rejects(storage.batch(bad))
      assert.equal(await storage.get('first'), undefined)
      assert.deepEqual(await collect(storage.iterate('')), [])
    })

    it('iterates in byte order of the keys, fixed-width numbers numerically', async () => {
      const seqs = [10, 2, 33, 1, 100, 7]
      await storage.batch(seqs.map((n) => ({ type: 'put' as const, key: `log/${String(n).padStart(20, '0')}`, value: bytes(n) })))
      const keys = await collect(storage.iterate('log/'))
      assert.deepEqual(keys.map((k) => Number(k.slice(4))), [...seqs].sort((a, b) => a - b))
      const values: number[] = []
      for await (const [, value] of storage.iterate('log/')) values.push(value[0]!)
      assert.deepEqual(values, [1, 2, 7, 10, 33, 100])
    })

    it('keeps prefixes apart, including neighbours at the prefix upper bound', async () => {
      const keys = ['a', 'a.', 'a/', 'a/1', 'a/b/c', 'a/\u00ff', 'a/\u{10ffff}', 'a0', 'a00', 'ab', 'b/1', '']
      await storage.batch(keys.map((key) => ({ type: 'put' as const, key, value: text(key) })))
      assert.deepEqual(await collect(storage.iterate('a/')), ['a/', 'a/1', 'a/b/c', 'a/\u00ff', 'a/\u{10ffff}'])
      assert.deepEqual(await collect(storage.iterate('a/b')), ['a/b/c'])
      assert.deepEqual(await collect(storage.iterate('a0')), ['a0', 'a00'])
      assert.deepEqual(await collect(storage.iterate('c')), [])
      assert.equal((await collect(storage.iterate(''))).length, keys.length)
      for await (const [key, value] of storage.iterate('a')) assert.deepEqual(value, text(key))
    })

    it('iterates in reverse with a limit', async () => {
      await storage.batch(['p/1', 'p/2', 'p/3', 'p/4', 'q/1', 'o/9'].map((key) => ({ type: 'put' as const, key, value: bytes(1) })))
      assert.deepEqual(await collect(storage.iterate('p/', { reverse: true, limit: 2 })), ['p/4', 'p/3'])
      assert.deepEqual(await collect(storage.iterate('p/', { reverse: true })), ['p/4', 'p/3', 'p/2', 'p/1'])
      assert.deepEqual(await collect(storage.iterate('p/', { limit: 3 })), ['p/1', 'p/2', 'p/3'])
      assert.deepEqual(await collect(storage.iterate('p/', { limit: 0 })), [])
    })

    it('starts after gt, and gt outside the prefix does not widen it', async () => {
      await storage.batch(['p/1', 'p/2', 'p/3', 'p/4', 'q/1', 'o/9'].map((key) => ({ type: 'put' as const, key, value: bytes(1) })))
      assert.deepEqual(await collect(storage.iterate('p/', { gt: 'p/2' })), ['p/3', 'p/4'])
      assert.deepEqual(await collect(storage.iterate('p/', { gt: 'p/2', limit: 1 })), ['p/3'])
      assert.deepEqual(await collect(storage.iterate('p/', { gt: 'p/25' })), ['p/3', 'p/4'])
      assert.deepEqual(await collect(storage.iterate('p/', { gt: 'a' })), ['p/1', 'p/2', 'p/3', 'p/4'])
      assert.deepEqual(await collect(storage.iterate('p/', { gt: 'p/' })), ['p/1', 'p/2', 'p/3', 'p/4'])
      assert.deepEqual(await collect(storage.iterate('p/', { gt: 'p/4' })), [])
      assert.deepEqual(await collect(storage.iterate('p/', { gt: 'z' })), [])
      assert.deepEqual(await collect(storage.iterate('p/', { gt: 'p/2', reverse: true })), ['p/4', 'p/3'])
    })

    it('copies values in and out', async () => {
      const written = bytes(1, 2, 3)
      const pending = storage.batch([{ type: 'put', key: 'k', value: written }])
      written[0] = 99
      await pending
      written[1] = 99
      const read = await storage.get('k')
      assert.deepEqual(read, bytes(1, 2, 3))
      read![2] = 99
      for await (const [, value] of storage.iterate('k')) {
        assert.deepEqual(value, bytes(1, 2, 3))
        value[0] = 42
      }
      assert.deepEqual(await storage.get('k'), bytes(1, 2, 3))
    })

    it('keeps acknowledged writes across a restart', async () => {
      await storage.batch([
        { type: 'put', key: 'kept/1', value: bytes(1) },
        { type: 'put', key: 'kept/2', value: bytes(2) },
        { type: 'put', key: 'gone', value: bytes(3) }
      ])
      await storage.batch([{ type: 'del', key: 'gone' }])
      storage = await env.restart(storage)
      assert.deepEqual(await storage.get('kept/2'), bytes(2))
      assert.equal(await storage.get('gone'), undefined)
      assert.deepEqual(await collect(storage.iterate('kept/')), ['kept/1', 'kept/2'])
    })

    it('refuses use after close', async () => {
      await storage.close()
      await assert.rejects(storage.get('k'))
      await assert.rejects(storage.batch([{ type: 'put', key: 'k', value: bytes(1) }]))
      storage = await env.open()
    })
  })
}

storageCompliance('MemoryStorage', () => {
  let memory: MemoryStorage | undefined
  return {
    async open () {
      memory ??= new MemoryStorage()
      return memory
    },
    async restart (storage) {
      assert.ok(storage instanceof MemoryStorage)
      memory = storage.crash()
      return memory
    },
    async cleanup () {}
  }
})

storageCompliance('LevelStorage', () => {
  let dir: string | undefined
  return {
    async open () {
      dir ??= await mkdtemp(join(tmpdir(), 'fedmesh-storage-'))
      return await LevelStorage.open(join(dir, 'db'))
    },
    async restart (storage) {
      await storage.close()
      return await LevelStorage.open(join(dir!, 'db'))
    },
    async cleanup () {
      if (dir !== undefined) await rm(dir, { recursive: true, force: true })
    }
  }
})

describe('LevelStorage', () => {
  let dir: string
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'fedmesh-level-')) })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  const assertLocked = (err: unknown): boolean => {
    assert.ok(err instanceof FedmeshError)
    assert.equal(err.code, 'storage-locked')
    assert.match(err.message, /data dir in use by another fedmesh process\?/)
    return true
  }

  it('refuses a database held open in this process with storage-locked', async () => {
    const first = await LevelStorage.open(join(dir, 'db'))
    try {
      await assert.rejects(LevelStorage.open(join(dir, 'db')), assertLocked)
    } finally {
      await first.close()
    }
  })

  it('refuses a database held open by another process with storage-locked', async () => {
    await (await LevelStorage.open(join(dir, 'db'))).close()
    const holder = spawn(process.execPath, ['--input-type=module', '-e', `
      import { Level } from 'level'
      const db = new Level(${JSON.stringify(join(dir, 'db'))})
      await db.open()
      process.stdout.write('open\\n')
      process.stdin.on('end', () => db.close())
      process.stdin.resume()`], { cwd: process.cwd(), stdio: ['pipe', 'pipe', 'inherit'] })
    try {
      await new Promise<void>((resolve, reject) => {
        holder.stdout.once('data', () => resolve())
        holder.once('exit', (code) => reject(new Error(`holder exited with ${code}`)))
      })
      await assert.rejects(LevelStorage.open(join(dir, 'db')), assertLocked)
    } finally {
      holder.stdin.end()
      await new Promise((resolve) => holder.once('exit', resolve))
    }
    await (await LevelStorage.open(join(dir, 'db'))).close()
  })

  it('does not create a database when asked not to', async () => {
    await assert.rejects(LevelStorage.open(join(dir, 'missing'), { createIfMissing: false }),
      (err: unknown) => err instanceof FedmeshError && err.code === 'storage-missing')
  })
})

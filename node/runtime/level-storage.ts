import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { Level } from 'level'
import { FedmeshError } from '../../base/errors.js'
import type { BatchOp, Storage } from '../../base/storage.js'

// Storage on LevelDB (classic-level). Keys are handled as UTF-8 bytes so that range bounds are exact
// in LevelDB's byte order: a prefix's upper bound is the prefix with its last byte incremented (UTF-8
// never contains 0xff, so that byte always exists). Every batch is written with sync: true.

export class StorageError extends FedmeshError {
  constructor (code: 'storage-locked' | 'storage-missing' | 'storage-open-failed', message: string, options?: { cause: unknown }) {
    super(code, message)
    this.name = 'StorageError'
    if (options !== undefined) this.cause = options.cause
  }
}

export interface LevelStorageOptions {
  /** false: fail with 'storage-missing' instead of creating a new database (readers, the CLI). */
  createIfMissing?: boolean
}

type Db = Level<Buffer, Uint8Array>

export class LevelStorage implements Storage {
  readonly #db: Db

  private constructor (db: Db) {
    this.#db = db
  }

  static async open (path: string, options: LevelStorageOptions = {}): Promise<LevelStorage> {
    const createIfMissing = options.createIfMissing ?? true
    // LevelDB creates the directory (and a LOCK file) even when told not to create a database.
    if (!createIfMissing && !existsSync(join(path, 'CURRENT'))) throw new StorageError('storage-missing', `no database at ${path}`)
    const db: Db = new Level<Buffer, Uint8Array>(path, { keyEncoding: 'buffer', valueEncoding: 'view', createIfMissing })
    try {
      await db.open()
    } catch (err) {
      throw openError(path, err)
    }
    return new LevelStorage(db)
  }

  async get (key: string): Promise<Uint8Array | undefined> {
    const value = await this.#db.get(keyBytes(key))
    return value === undefined ? undefined : plainCopy(value)
  }

  async batch (ops: ReadonlyArray<BatchOp>): Promise<void> {
    // A chained batch: the native binding copies each key and value as it is added. It costs about
    // half the CPU of an array batch (measured: ~40 µs less per 7-op batch), and Raft writes one per Ready.
    const batch = this.#db.batch()
    try {
      for (const op of ops) {
        if (op.type === 'put') batch.put(keyBytes(op.key), op.value)
        else batch.del(keyBytes(op.key))
      }
    } catch (err) {
      await batch.close()
      throw err
    }
    await batch.write({ sync: true })
  }

  async * iterate (prefix: string, options: { limit?: number, reverse?: boolean, gt?: string } = {}): AsyncIterable<[string, Uint8Array]> {
    const lower = keyBytes(prefix)
    const range: { gte?: Buffer, gt?: Buffer, lt?: Buffer } = {}
    const gt = options.gt === undefined ? undefined : keyBytes(options.gt)
    if (gt !== undefined && Buffer.compare(gt, lower) >= 0) range.gt = gt
    else range.gte = lower
    if (lower.length > 0) range.lt = prefixUpperBound(lower)
    const limit = options.limit ?? -1
    if (limit === 0) return
    for await (const [key, value] of this.#db.iterator({ ...range, limit, reverse: options.reverse === true })) {
      yield [key.toString('utf8'), plainCopy(value)]
    }
  }

  async close (): Promise<void> {
    await this.#db.close()
  }
}

function keyBytes (key: string): Buffer {
  return Buffer.from(key, 'utf8')
}

function prefixUpperBound (prefix: Buffer): Buffer {
  const bound = Buffer.from(prefix)
  const last = bound.length - 1
  if (bound[last] === 0xff) throw new RangeError('a UTF-8 key cannot end in 0xff')
  bound[last] = bound[last]! + 1
  return bound
}

// Level hands back Buffers (possibly views into a shared slab); callers get a plain array they own.
function plainCopy (value: Uint8Array): Uint8Array {
  return new Uint8Array(value)
}

function openError (path: string, err: unknown): StorageError {
  const cause = (err as { cause?: { code?: string, message?: string } }).cause
  if (cause?.code === 'LEVEL_LOCKED') {
    return new StorageError('storage-locked',
      `database ${path} is locked: data dir in use by another fedmesh process?`, { cause: err })
  }
  return new StorageError('storage-open-failed', `cannot open database ${path}: ${cause?.message ?? String(err)}`, { cause: err })
}

import { watch, type FSWatcher } from 'node:fs'
import { mkdir, open } from 'node:fs/promises'
import { join } from 'node:path'
import type { Clock } from '../../base/clock.js'
import { silentLogger, type Logger } from '../../base/log.js'
import {
  Policy, PolicyError, POLICY_TEXT_BYTES_MAX, type PolicyContext, type PolicyDecision, type PolicyRequest
} from './policy.js'
import { systemClock } from '../runtime/system-clock.js'

// The shell around Policy: reads <data-dir>/policy.yaml and keeps it current. The directory is
// watched (editors replace files by rename, which a watch on the file itself would miss) and
// changes are debounced. A missing file is the empty policy (deny all). A new file that does not
// parse, or that others may write, is rejected with its line and reason, and the policy in force
// stays; the same holds at start, where the policy in force is the empty one.
// Events: 'policy:loaded' (CustomEvent<{ source, capabilities, rules }>) and 'policy:rejected'
// (CustomEvent<PolicyError>).

export const POLICY_FILE = 'policy.yaml'

/** Reads and parses a policy file; a missing file is the empty policy. Throws PolicyError. */
export async function loadPolicyFile (path: string): Promise<{ policy: Policy, text: string | undefined }> {
  let handle
  try {
    handle = await open(path, 'r')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { policy: Policy.empty(path), text: undefined }
    throw new PolicyError(path, 1, `cannot read policy file: ${(err as Error).message}`)
  }
  try {
    const info = await handle.stat()
    if ((info.mode & 0o022) !== 0) {
      const mode = (info.mode & 0o777).toString(8)
      throw new PolicyError(path, 1, `policy file is writable by group or others (mode ${mode}; run: chmod go-w ${path})`)
    }
    if (info.size > POLICY_TEXT_BYTES_MAX) {
      throw new PolicyError(path, 1, `policy file is larger than ${POLICY_TEXT_BYTES_MAX} bytes`)
    }
    if (!info.isFile()) throw new PolicyError(path, 1, 'policy path is not a regular file')
    const text = await handle.readFile('utf8')
    return { policy: Policy.parse(text, path), text }
  } catch (err) {
    if (err instanceof PolicyError) throw err
    throw new PolicyError(path, 1, `cannot read policy file: ${(err as Error).message}`)
  } finally {
    await handle.close()
  }
}

export interface PolicyWatcherInit {
  dataDir: string
  clock?: Clock
  logger?: Logger
  debounceMs?: number
}

export class PolicyWatcher extends EventTarget {
  readonly path: string
  readonly #dataDir: string
  readonly #clock: Clock
  readonly #logger: Logger
  readonly #debounceMs: number
  #policy: Policy
  /** The text in force: undefined for a missing file, null before the first load. */
  #text: string | undefined | null = null
  #watcher: FSWatcher | undefined
  #cancelDebounce: (() => void) | undefined
  #reloading: Promise<boolean> = Promise.resolve(false)

  constructor (init: PolicyWatcherInit) {
    super()
    this.#dataDir = init.dataDir
    this.path = join(init.dataDir, POLICY_FILE)
    this.#clock = init.clock ?? systemClock
    this.#logger = init.logger ?? silentLogger
    this.#debounceMs = init.debounceMs ?? 200
    this.#policy = Policy.empty(this.path)
  }

  get policy (): Policy {
    return this.#policy
  }

  decide (request: PolicyRequest, context: PolicyContext): PolicyDecision {
    return this.#policy.decide(request, context)
  }

  async start (): Promise<void> {
    await mkdir(this.#dataDir, { recursive: true, mode: 0o700 })
    await this.reload()
    this.#watcher = watch(this.#dataDir, { persistent: false }, (_event, filename) => {
      if (filename === null || filename === POLICY_FILE) this.#scheduleReload()
    })
    this.#watcher.on('error', (err) => this.#logger.error({ err: err.message, path: this.path }, 'policy watch failed'))
  }

  async stop (): Promise<void> {
    this.#cancelDebounce?.()
    this.#cancelDebounce = undefined
    this.#watcher?.close()
    this.#watcher = undefined
    await this.#reloading
  }

  /** Re-reads the file now; true if a changed, valid policy was installed. Reloads run one at a time. */
  async reload (): Promise<boolean> {
    this.#reloading = this.#reloading.then(async () => await this.#reloadOnce(), async () => await this.#reloadOnce())
    return await this.#reloading
  }

  async #reloadOnce (): Promise<boolean> {
    let loaded
    try {
      loaded = await loadPolicyFile(this.path)
    } catch (err) {
      if (!(err instanceof PolicyError)) throw err
      const fields = { code: err.code, path: err.source, line: err.line, reason: err.reason }
      this.#logger.error(fields, 'policy rejected; the previous policy stays in force')
      this.dispatchEvent(new CustomEvent('policy:rejected', { detail: err }))
      return false
    }
    // An unchanged file keeps the policy in force, with its rate-limit buckets.
    if (loaded.text === this.#text) return false
    this.#policy = loaded.policy
    this.#text = loaded.text
    const detail = { source: this.path, capabilities: loaded.policy.capabilityCount, rules: loaded.policy.ruleCount }
    this.#logger.info(detail, loaded.text === undefined ? 'no policy file: denying every request' : 'policy loaded')
    this.dispatchEvent(new CustomEvent('policy:loaded', { detail }))
    return true
  }

  #scheduleReload (): void {
    this.#cancelDebounce?.()
    // Clock has only a repeating timer; cancelling it on its first call makes it a one-shot.
    const cancel = this.#clock.every(this.#debounceMs, () => {
      cancel()
      if (this.#cancelDebounce === cancel) this.#cancelDebounce = undefined
      this.reload().catch((err: unknown) => this.#logger.error({ err: (err as Error).message }, 'policy reload failed'))
    })
    this.#cancelDebounce = cancel
  }
}

import assert from 'node:assert/strict'
import { categoryRank, CATEGORIES, CROSS_ORG_MODES, isCategory, isMode, type Category, type Mode, type ModeTable } from './categories.js'
import { detectSpans } from './detectors.js'
import { SanitizeBlockedError, SanitizeConfigError, SanitizeInputError, type Redactions, type SanitizeReport } from './errors.js'
import { normalizeName, SENSITIVE_NAMES, SENSITIVE_SUFFIXES } from './names.js'
import { createPseudonymizer, SALT_BYTES_MIN, type Pseudonymizer } from './pseudonym.js'
import type { Span } from './span.js'

// The scrubber: walks a JSON value, copies what changes (the input is never mutated), replaces findings
// according to each category's mode, and reports categories and counts — never the values.

export interface SanitizerOptions {
  /** Per-category overrides of CROSS_ORG_MODES. */
  modes?: Partial<Record<Category, Mode>>
  /** Per-node secret for `hash` pseudonyms (>= 16 bytes); required when any mode is `hash`. */
  salt?: Uint8Array
  /** Extra sensitive field names (compared like the built-in ones). */
  sensitiveNames?: readonly string[]
  depthMax?: number
  /** In UTF-16 code units, per string (field names included). */
  stringLengthMax?: number
  /** Values (objects, arrays and leaves) per call. */
  nodesMax?: number
}

export interface SanitizeResult<T> {
  /** Shares unchanged subtrees with the input (copy-on-write); neither is mutated: treat both as read-only. */
  value: T
  report: SanitizeReport & { blocked: false }
}

export interface Sanitizer {
  readonly modes: ModeTable
  sanitize(value: unknown): SanitizeResult<unknown>
  sanitizeText(text: string): SanitizeResult<string>
}

export const DEPTH_MAX_DEFAULT = 64
export const STRING_LENGTH_MAX_DEFAULT = 1024 * 1024
export const NODES_MAX_DEFAULT = 1_000_000
const NAME_CACHE_MAX = 4096
const NAME_CACHED_LENGTH_MAX = 256
/** Card numbers have 14+ digits; smaller numbers (epoch milliseconds, amounts) are never judged. */
const CARD_NUMBER_MIN = 1e13
/** The walk recurses once per level: a ceiling on depthMax keeps it far from the stack's limit. */
const DEPTH_MAX_CEILING = 1024

interface Settings {
  modes: ModeTable
  pseudonymize: Pseudonymizer | undefined
  isSensitiveName: (normalized: string) => boolean
  depthMax: number
  stringLengthMax: number
  nodesMax: number
  fieldNames: Map<string, FieldName>
}

/** What a field name says, cached per sanitizer: keys repeat across records. */
interface FieldName {
  normalized: string
  sensitive: boolean
  /** Findings in the name itself ({"alice@example.com": …}). */
  spans: readonly Span[]
}

export function createSanitizer (options: SanitizerOptions = {}): Sanitizer {
  const settings = settingsFrom(options)
  return {
    modes: settings.modes,
    sanitize: (value) => {
      const pass = new SanitizePass(settings)
      const clean = pass.value(value, 0, '')
      // Only a top-level card number in drop mode drops the whole value: what is left is null.
      return { value: clean === DROPPED ? null : clean, report: pass.finish() }
    },
    sanitizeText: (text) => {
      if (typeof text !== 'string') throw new SanitizeInputError('sanitize-not-json', 'sanitizeText takes a string')
      const pass = new SanitizePass(settings)
      const clean = pass.text(text, '')
      return { value: clean, report: pass.finish() }
    }
  }
}

function settingsFrom (options: SanitizerOptions): Settings {
  const modes: Record<Category, Mode> = { ...CROSS_ORG_MODES }
  for (const [category, mode] of Object.entries(options.modes ?? {})) {
    if (mode === undefined) continue
    if (!isCategory(category)) throw new SanitizeConfigError(`unknown category '${category}'`)
    if (!isMode(mode)) throw new SanitizeConfigError(`unknown mode '${String(mode)}' for ${category}`)
    modes[category] = mode
  }
  const hashing = CATEGORIES.some((category) => modes[category] === 'hash')
  if (hashing && (options.salt === undefined || options.salt.length < SALT_BYTES_MIN)) {
    throw new SanitizeConfigError(`mode 'hash' needs a salt of at least ${SALT_BYTES_MIN} bytes`)
  }
  const exact = new Set([...SENSITIVE_NAMES, ...(options.sensitiveNames ?? []).map(normalizeName)])
  return {
    modes: Object.freeze(modes),
    pseudonymize: hashing && options.salt !== undefined ? createPseudonymizer(Uint8Array.from(options.salt)) : undefined,
    isSensitiveName: (name) => exact.has(name) || SENSITIVE_SUFFIXES.some((suffix) => name.endsWith(suffix)),
    depthMax: positiveLimit('depthMax', options.depthMax, DEPTH_MAX_DEFAULT, DEPTH_MAX_CEILING),
    stringLengthMax: positiveLimit('stringLengthMax', options.stringLengthMax, STRING_LENGTH_MAX_DEFAULT),
    nodesMax: positiveLimit('nodesMax', options.nodesMax, NODES_MAX_DEFAULT),
    fieldNames: new Map()
  }
}

function positiveLimit (name: string, value: number | undefined, fallback: number, ceiling = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value <= 0 || value > ceiling) {
    throw new SanitizeConfigError(`${name} must be an integer in 1..${ceiling}`)
  }
  return value
}

const DROPPED = Symbol('dropped')
type Clean = unknown | typeof DROPPED

/** One call's walk: its node budget, its counts, the categories that block it. */
class SanitizePass {
  readonly #settings: Settings
  readonly #redactions: Redactions = {}
  readonly #blocked = new Set<Category>()
  #nodes = 0

  constructor (settings: Settings) {
    this.#settings = settings
  }

  finish (): SanitizeReport & { blocked: false } {
    if (this.#blocked.size > 0) {
      const categories = [...this.#blocked].sort((a, b) => categoryRank(a) - categoryRank(b))
      throw new SanitizeBlockedError(categories, { ...this.#redactions })
    }
    return { redactions: { ...this.#redactions }, blocked: false }
  }

  /** Depth is bounded by depthMax, so the recursion is bounded too (and cycles end there). */
  value (value: unknown, depth: number, label: string): Clean {
    this.#count(depth)
    switch (typeof value) {
      case 'string':
        return this.text(value, label)
      case 'number':
        if (!Number.isFinite(value)) throw new SanitizeInputError('sanitize-not-json', 'non-finite number')
        return Math.abs(value) >= CARD_NUMBER_MIN && Number.isSafeInteger(value) ? this.#number(value) : value
      case 'boolean':
        return value
      case 'object':
        if (value === null) return null
        if (Array.isArray(value)) return this.#array(value, depth)
        return this.#object(value, depth)
      default:
        throw new SanitizeInputError('sanitize-not-json', `${typeof value} is not a JSON value`)
    }
  }

  text (text: string, label: string): string {
    this.#checkLength(text)
    const spans = detectSpans(text, label)
    return spans.length === 0 ? text : this.#replaceSpans(text, spans)
  }

  #count (depth: number): void {
    if (depth > this.#settings.depthMax) {
      throw new SanitizeInputError('sanitize-depth-exceeded', `nesting deeper than ${this.#settings.depthMax}`)
    }
    this.#nodes++
    if (this.#nodes > this.#settings.nodesMax) {
      throw new SanitizeInputError('sanitize-nodes-exceeded', `more than ${this.#settings.nodesMax} values`)
    }
  }

  #checkLength (text: string): void {
    if (text.length > this.#settings.stringLengthMax) {
      throw new SanitizeInputError('sanitize-string-too-long', `string longer than ${this.#settings.stringLengthMax}`)
    }
  }

  /** Card numbers stored as JSON numbers: judged as their decimal text. */
  #number (value: number): Clean {
    const text = String(value)
    const spans = detectSpans(text)
    const card = spans.find((span) => span.category === 'card' && span.start === 0 && span.end === text.length)
    return card === undefined ? value : this.#replaceWhole('card', value, text)
  }

  /** Copy-on-write: the input array itself while every element comes back unchanged. */
  #array (value: unknown[], depth: number): unknown[] {
    let clean: unknown[] | undefined
    for (let index = 0; index < value.length; index++) {
      const element = value[index]
      const result = this.value(element, depth + 1, '')
      if (clean === undefined) {
        if (result === element) continue
        clean = value.slice(0, index)
      }
      if (result !== DROPPED) clean.push(result)
    }
    return clean ?? value
  }

  /** Copy-on-write like #array: a new object only from the first field that changes. */
  #object (value: object, depth: number): Record<string, unknown> {
    const prototype = Object.getPrototypeOf(value)
    if (prototype !== Object.prototype && prototype !== null) {
      throw new SanitizeInputError('sanitize-not-json', 'only plain objects are JSON objects')
    }
    const source = value as Record<string, unknown>
    let clean: Record<string, unknown> | undefined
    let fieldIndex = 0
    for (const key in source) {
      if (!Object.hasOwn(source, key)) continue
      const name = this.#fieldName(key)
      const field = source[key]
      const result = name.sensitive
        ? this.#sensitive(field, depth + 1, name.normalized)
        : this.value(field, depth + 1, name.normalized)
      if (clean === undefined) {
        if (result === field && name.spans.length === 0) {
          fieldIndex++
          continue
        }
        clean = leadingFields(source, fieldIndex)
      }
      fieldIndex++
      if (result === DROPPED) continue
      const cleanKey = name.spans.length === 0 ? key : this.#key(key, name.spans)
      if (cleanKey !== undefined) defineField(clean, cleanKey, result)
    }
    return clean ?? source
  }

  #fieldName (key: string): FieldName {
    this.#checkLength(key)
    const cache = this.#settings.fieldNames
    let name = cache.get(key)
    if (name === undefined) {
      const normalized = normalizeName(key)
      name = { normalized, sensitive: this.#settings.isSensitiveName(normalized), spans: detectSpans(key) }
      if (key.length <= NAME_CACHED_LENGTH_MAX) {
        if (cache.size >= NAME_CACHE_MAX) cache.clear()
        cache.set(key, name)
      }
    }
    return name
  }

  /** A dropped finding in a field name drops the whole field. */
  #key (key: string, spans: readonly Span[]): string | undefined {
    if (spans.some((span) => this.#settings.modes[span.category] === 'drop')) {
      for (const span of spans) this.#record(span.category)
      return undefined
    }
    return this.#replaceSpans(key, spans)
  }

  /**
   * A value under a sensitive name is replaced whole. A string is reported under the most specific
   * category found in it (so a PEM under "private_key" is a private-key and blocks by default), else
   * as sensitive-field; other values are checked to be bounded JSON, then replaced as sensitive-field.
   */
  #sensitive (value: unknown, depth: number, name: string): Clean {
    if (value === null || typeof value === 'boolean' || value === '') return this.value(value, depth, name)
    if (typeof value === 'string') {
      this.#count(depth)
      this.#checkLength(value)
      const category = detectSpans(value, name).reduce<Category>(
        (best, span) => categoryRank(span.category) < categoryRank(best) ? span.category : best, 'sensitive-field')
      return this.#replaceWhole(category, value, value)
    }
    this.#validate(value, depth)
    return this.#replaceWhole('sensitive-field', value, JSON.stringify(value))
  }

  /** Bounds and JSON-ness of a subtree that is replaced whole, without looking for findings in it. */
  #validate (value: unknown, depth: number): void {
    this.#count(depth)
    if (typeof value === 'string') this.#checkLength(value)
    else if (typeof value === 'number' && !Number.isFinite(value)) throw new SanitizeInputError('sanitize-not-json', 'non-finite number')
    else if (typeof value === 'object' && value !== null) {
      const prototype = Object.getPrototypeOf(value)
      if (!Array.isArray(value) && prototype !== Object.prototype && prototype !== null) {
        throw new SanitizeInputError('sanitize-not-json', 'only plain objects are JSON objects')
      }
      for (const child of Object.values(value)) this.#validate(child, depth + 1)
    } else if (typeof value !== 'boolean' && typeof value !== 'number' && value !== null) {
      throw new SanitizeInputError('sanitize-not-json', `${typeof value} is not a JSON value`)
    }
  }

  #replaceWhole (category: Category, original: unknown, text: string): Clean {
    const mode = this.#settings.modes[category]
    if (mode === 'keep') return original
    this.#record(category)
    if (mode === 'drop') return DROPPED
    return this.#replacement(category, mode, text)
  }

  #replaceSpans (text: string, spans: readonly Span[]): string {
    let clean = ''
    let copied = 0
    for (const span of spans) {
      assert.ok(span.start >= copied && span.end > span.start, 'spans are sorted and disjoint')
      const mode = this.#settings.modes[span.category]
      if (mode === 'keep') continue
      this.#record(span.category)
      clean += text.slice(copied, span.start)
      if (mode !== 'drop') clean += this.#replacement(span.category, mode, text.slice(span.start, span.end))
      copied = span.end
    }
    return clean + text.slice(copied)
  }

  #replacement (category: Category, mode: Exclude<Mode, 'keep' | 'drop'>, found: string): string {
    if (mode === 'hash') {
      assert.ok(this.#settings.pseudonymize !== undefined, 'hash mode implies a salt')
      return this.#settings.pseudonymize(category, found)
    }
    if (mode === 'block') this.#blocked.add(category)
    return `[REDACTED:${category}]`
  }

  #record (category: Category): void {
    this.#redactions[category] = (this.#redactions[category] ?? 0) + 1
  }
}

/** A new object with the first `count` own fields of source. */
function leadingFields (source: Record<string, unknown>, count: number): Record<string, unknown> {
  const target: Record<string, unknown> = {}
  let copied = 0
  for (const key in source) {
    if (copied === count) break
    if (!Object.hasOwn(source, key)) continue
    defineField(target, key, source[key])
    copied++
  }
  return target
}

/** A name taken by a redacted twin gets "#n"; "__proto__" is defined, not assigned, so it stays data. */
function defineField (target: Record<string, unknown>, key: string, value: unknown): void {
  let name = key
  for (let suffix = 2; Object.hasOwn(target, name); suffix++) name = `${key}#${suffix}`
  if (name === '__proto__') Object.defineProperty(target, name, { value, enumerable: true, writable: true, configurable: true })
  else target[name] = value
}

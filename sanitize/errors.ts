import { FedmeshError } from '../base/errors.js'
import type { Category } from './categories.js'

export type Redactions = Partial<Record<Category, number>>

/** What was found: categories and counts, never the values. */
export interface SanitizeReport {
  redactions: Redactions
  blocked: boolean
}

/** A finding whose mode is `block`: nothing may be sent. Carries the report, never the values. */
export class SanitizeBlockedError extends FedmeshError {
  readonly categories: Category[]
  readonly report: SanitizeReport & { blocked: true }

  constructor (categories: Category[], redactions: Redactions) {
    super('sanitize-blocked', `send blocked: payload contains ${categories.join(', ')}`)
    this.name = 'SanitizeBlockedError'
    this.categories = categories
    this.report = { redactions, blocked: true }
  }
}

export type SanitizeInputCode =
  | 'sanitize-depth-exceeded'
  | 'sanitize-string-too-long'
  | 'sanitize-nodes-exceeded'
  | 'sanitize-not-json'

/** The input is not a bounded JSON value. */
export class SanitizeInputError extends FedmeshError {
  constructor (code: SanitizeInputCode, message: string) {
    super(code, message)
    this.name = 'SanitizeInputError'
  }
}

/** The sanitizer was configured wrongly (unknown category or mode, missing salt). */
export class SanitizeConfigError extends FedmeshError {
  constructor (message: string) {
    super('sanitize-config', message)
    this.name = 'SanitizeConfigError'
  }
}

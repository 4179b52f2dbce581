export { CATEGORIES, CROSS_ORG_MODES, MODES, isCategory, isMode, type Category, type Mode, type ModeTable } from './categories.js'
export { IBAN_LENGTHS, ibanValid, luhnValid } from './checksums.js'
export { detectSpans } from './detectors.js'
export { SanitizeBlockedError, SanitizeConfigError, SanitizeInputError, type Redactions, type SanitizeInputCode, type SanitizeReport } from './errors.js'
export { normalizeName, SENSITIVE_NAMES, SENSITIVE_SUFFIXES } from './names.js'
export { createPseudonymizer, SALT_BYTES_MIN, type Pseudonymizer } from './pseudonym.js'
export {
  createSanitizer, DEPTH_MAX_DEFAULT, NODES_MAX_DEFAULT, STRING_LENGTH_MAX_DEFAULT,
  type SanitizeResult, type Sanitizer, type SanitizerOptions
} from './sanitizer.js'
export type { Span } from './span.js'

import { isAlnum, isDigit, isWordChar } from './char-codes.js'
import { luhnValid } from './checksums.js'
import type { Span } from './span.js'

// Cards, phone numbers, SSNs and IPv4 addresses are all "digits with separators". One regex finds the
// maximal runs of digits, spaces, dots, dashes and parentheses (linear: a single greedy class, then one
// digit); each run is split at spaces and windows of up to WINDOW_TOKENS_MAX tokens are classified,
// longest first, so "2024 4111 1111 1111 1111" still yields the card after the year.

const NUMERIC_RUN = /[+(]?\d[\d().\- ]*\d/g
const WINDOW_TOKENS_MAX = 6
const RUN_DIGITS_MIN = 4

const CARD_GROUPED = /^\d{4}(?:[ -]\d{3,6}){2,4}$/
const CARD_PLAIN = /^\d{13,19}$/
const SSN_DASHED = /^(\d{3})-(\d{2})-(\d{4})$/
const SSN_PLAIN = /^\d{9}$/
const SSN_LABEL = /(?:\bssn|social security(?: number)?|\bss#)\W{0,4}$/i
const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/
const VERSION_LABEL = /(?:version|\bver|build|release|firmware|\brev)[\s:=#v]{0,3}$/i
const PHONE_CHARS = /^[+(]?\d[\d ().-]*$/
const NON_DIGITS = /\D+/g

export function findNumericSpans (text: string, spans: Span[]): void {
  NUMERIC_RUN.lastIndex = 0
  for (let match = NUMERIC_RUN.exec(text); match !== null; match = NUMERIC_RUN.exec(text)) {
    const start = match.index
    const end = start + match[0].length
    if (countDigits(text, start, end) >= RUN_DIGITS_MIN) classifyRun(text, start, end, spans)
  }
}

function classifyRun (text: string, start: number, end: number, spans: Span[]): void {
  const tokenStarts: number[] = []
  const tokenEnds: number[] = []
  for (let index = start; index < end;) {
    while (text.charCodeAt(index) === 32) index++
    tokenStarts.push(index)
    while (index < end && text.charCodeAt(index) !== 32) index++
    tokenEnds.push(index)
  }
  const edges: RunEdges = {
    attached: attachedLeft(text, start) || attachedRight(text, end),
    ipLeft: ipAttachedLeft(text, start),
    ipRight: ipAttachedRight(text, end)
  }
  const tokenCount = tokenStarts.length
  for (let first = 0; first < tokenCount;) {
    let taken = 0
    for (let width = Math.min(WINDOW_TOKENS_MAX, tokenCount - first); width >= 1 && taken === 0; width--) {
      const last = first + width - 1
      const windowEnd = tokenEnds[last] as number
      const windowStart = unbalancedParenSkipped(text, tokenStarts[first] as number, windowEnd)
      const category = classifyWindow(text, windowStart, windowEnd, first === 0, last === tokenCount - 1, edges)
      if (category !== undefined) {
        spans.push({ start: windowStart, end: windowEnd, category })
        taken = width
      }
    }
    first += taken === 0 ? 1 : taken
  }
}

/** "(415) 555-2671" keeps its '(' ; "(422-564-1252)" loses it to the surrounding prose. */
function unbalancedParenSkipped (text: string, start: number, end: number): number {
  if (text.charCodeAt(start) !== 40) return start
  for (let index = start + 1; index < end; index++) if (text.charCodeAt(index) === 41) return start
  return start + 1
}

/**
 * attached: the run is glued to an identifier ("DE01 4590 2706 0191 8795 53", "INV-555-123-4567"), so no
 * window of it is a card, SSN or phone. IPv4 windows are single tokens and judge only their own edges.
 */
interface RunEdges { attached: boolean, ipLeft: boolean, ipRight: boolean }

function classifyWindow (
  text: string, start: number, end: number, atRunStart: boolean, atRunEnd: boolean, edges: RunEdges
): Span['category'] | undefined {
  // Digit counts decide which shapes are possible before any substring or regex is made.
  const digitCount = countDigits(text, start, end)
  const international = text.charCodeAt(start) === 43
  const card = digitCount >= 13 && digitCount <= 19
  const phone = international ? digitCount >= 8 && digitCount <= 15 : digitCount >= 10 && digitCount <= 17
  if (!edges.attached && (card || phone || digitCount === 9)) {
    const window = text.slice(start, end)
    const digits = window.replace(NON_DIGITS, '')
    if (card && isCard(window, digits)) return 'card'
    if (digitCount === 9 && isSsn(text, start, window)) return 'national-id'
    if (phone && isPhone(window, digits)) return 'phone'
  }
  const ipAttached = (atRunStart && edges.ipLeft) || (atRunEnd && edges.ipRight)
  if (ipAttached || digitCount > 12 || countDots(text, start, end) !== 3) return undefined
  return isIpv4(text, start, text.slice(start, end)) ? 'ip-address' : undefined
}

function isCard (window: string, digits: string): boolean {
  if (digits.length < 13 || digits.length > 19) return false
  if (!CARD_PLAIN.test(window)) {
    if (!CARD_GROUPED.test(window)) return false
    if (window.includes(' ') && window.includes('-')) return false
  }
  return cardBrandLengthValid(digits) && luhnValid(digits)
}

/** Issuer prefixes (IIN ranges) and lengths of the card networks we recognise. */
function cardBrandLengthValid (digits: string): boolean {
  const length = digits.length
  const two = Number(digits.slice(0, 2))
  const four = Number(digits.slice(0, 4))
  // Visa's old 13-digit numbers are gone from circulation; EAN-13 barcodes (German ones start 40-44) are not.
  if (digits[0] === '4') return length === 16 || length === 19 // Visa
  if ((two >= 51 && two <= 55) || (four >= 2221 && four <= 2720)) return length === 16 // Mastercard
  if (two === 34 || two === 37) return length === 15 // Amex
  if (four === 6011 || two === 65 || (four >= 6440 && four <= 6499)) return length >= 16 // Discover
  if (four >= 3528 && four <= 3589) return length >= 16 // JCB
  if (two === 36 || two === 38 || (four >= 3000 && four <= 3059)) return length >= 14 // Diners
  if (two === 62) return length >= 16 // UnionPay
  if ([5018, 5020, 5038, 5893, 6304, 6759, 6761, 6762, 6763].includes(four)) return length >= 12 // Maestro
  return false
}

/** US SSN: dashed, or nine bare digits right after an SSN label; never the ranges SSA does not issue. */
function isSsn (text: string, start: number, window: string): boolean {
  let area: number
  let group: number
  let serial: number
  const dashed = SSN_DASHED.exec(window)
  if (dashed !== null) {
    area = Number(dashed[1])
    group = Number(dashed[2])
    serial = Number(dashed[3])
  } else if (SSN_PLAIN.test(window) && SSN_LABEL.test(text.slice(Math.max(0, start - 24), start))) {
    area = Number(window.slice(0, 3))
    group = Number(window.slice(3, 5))
    serial = Number(window.slice(5))
  } else {
    return false
  }
  return area !== 0 && area !== 666 && area < 900 && group !== 0 && serial !== 0
}

/**
 * International: a leading '+' and 8..15 digits. Otherwise separators are required (a bare digit string is
 * an id, not a phone) and either the North American 3-3-4 shape (area code 2-9), a trunk '0' prefix with
 * 10..11 digits, or a '00' international prefix with 10..17.
 */
function isPhone (window: string, digits: string): boolean {
  if (!PHONE_CHARS.test(window)) return false
  if (window.charCodeAt(0) === 43) return digits.length >= 8 && digits.length <= 15 && digits[0] !== '0'
  const groups = window.split(NON_DIGITS).filter((group) => group.length > 0)
  if (groups.length < 2) return false
  if (!separatorsConsistent(window)) return false
  const shape = groups.map((group) => group.length).join('-')
  const northAmerican = digits.length === 11 && digits[0] === '1' ? digits.slice(1) : digits
  if ((shape === '3-3-4' || shape === '1-3-3-4') && northAmerican.length === 10) {
    return northAmerican[0] !== '0' && northAmerican[0] !== '1'
  }
  if (!groups.every((group) => group.length >= 2 && group.length <= 8)) return false
  const trunk = digits[0] === '0' && digits[1] !== '0' && digits.length >= 10 && digits.length <= 11
  const internationalPrefix = digits.startsWith('00') && digits[2] !== '0' && digits.length >= 10 && digits.length <= 17
  return trunk || internationalPrefix
}

/** One separator kind throughout, except the "(415) 555-2671" shape. */
function separatorsConsistent (window: string): boolean {
  const separators = new Set(window.replace(/[\d()]/g, ''))
  if (separators.size <= 1) return true
  return window.startsWith('(') && separators.size === 2 && separators.has(' ')
}

/** A dotted quad is an IPv4 address unless a version label sits right before it (`version 1.2.3.4`). */
function isIpv4 (text: string, start: number, window: string): boolean {
  const quad = IPV4.exec(window)
  if (quad === null) return false
  for (let octet = 1; octet <= 4; octet++) {
    const part = quad[octet] as string
    if (Number(part) > 255 || (part.length > 1 && part[0] === '0')) return false
  }
  return !VERSION_LABEL.test(text.slice(Math.max(0, start - 12), start))
}

function countDots (text: string, start: number, end: number): number {
  let count = 0
  for (let index = start; index < end; index++) if (text.charCodeAt(index) === 46) count++
  return count
}

function countDigits (text: string, start: number, end: number): number {
  let count = 0
  for (let index = start; index < end; index++) {
    const code = text.charCodeAt(index)
    if (isDigit(code)) count++
  }
  return count
}

/** "INV-555-123-4567", "#4111…", "/2024-01-15": digits glued to an identifier are part of it. */
function attachedLeft (text: string, start: number): boolean {
  const previous = text.charCodeAt(start - 1)
  return isWordChar(previous) || '#/\\.-$€£'.includes(text[start - 1] ?? ' ')
}

function attachedRight (text: string, end: number): boolean {
  const next = text.charCodeAt(end)
  if (isWordChar(next) || next === 64 || next === 37) return true // letters, '@', '%'
  return '-/.'.includes(text[end] ?? ' ') && isAlnum(text.charCodeAt(end + 1))
}

/** "Chrome/120.0.6099.109", "v1.2.3.4", "lib-1.2.3.4" are versions; "http://10.0.0.1" is not. */
function ipAttachedLeft (text: string, start: number): boolean {
  const previous = text.charCodeAt(start - 1)
  if (isWordChar(previous) || previous === 46) return true
  return (previous === 47 || previous === 45) && isAlnum(text.charCodeAt(start - 2))
}

/** "1.2.3.4-beta" is a version; "10.0.0.1:8080" and "10.0.0.0/8" are addresses. */
function ipAttachedRight (text: string, end: number): boolean {
  const next = text.charCodeAt(end)
  if (isWordChar(next)) return true
  return (next === 45 || next === 46) && isAlnum(text.charCodeAt(end + 1))
}

import { categoryRank, type Category } from './categories.js'
import { IBAN_LENGTHS, ibanValid } from './checksums.js'
import { isAlnum, isDigit, isLower, isUpper, isWordChar } from './char-codes.js'
import { normalizeName } from './names.js'
import { findNumericSpans } from './numeric-runs.js'
import type { Span } from './span.js'

// One pass over the characters gathers cheap features (digit, upper-case, '@' and ':' counts, long token
// runs); each detector runs only when its features allow a match, so clean business text costs one loop.
// No regex here nests quantifiers over the same characters: each is linear in the text it scans.
//
// The rules, where a look-alike forced a decision (test/sanitize/corpus holds an example of each):
// - email: local@domain.tld with a 2+ letter TLD; "logo@2x.png" (file extensions) and "user@localhost"
//   are not emails; the user part of a URL ("https://bob@host") is reported as an email when it is one.
// - phone: "+" and 8..15 digits, or separated shapes: NANP 3-3-4 (area code 2-9), a trunk '0' with
//   10..11 digits, or a '00' international prefix. Bare digit strings are ids, never phones; dates, times, digits glued to letters
//   or '-' ("INV-555-123-4567") are not phones. Local 7-digit numbers are not detected.
// - card: 14..19 digits, plain or in groups (spaces or dashes), a known network prefix and length (not
//   13-digit Visa: EAN-13 barcodes look the same), Luhn-valid.
// - iban: a known country, its registry length, compact or in groups of four, mod-97 valid.
// - national-id: US SSN dashed (or 9 bare digits right after an SSN label); never area 000, 666 or 9xx,
//   group 00 or serial 0000.
// - ip-address: valid dotted quads, unless versions: glued to a name ("v1.2.3.4", "Chrome/120.0.1.2"),
//   with more parts, or right after a version label ("version 1.2.3.4"). IPv6 in RFC 4291 text forms
//   with 4+ hex digits ("::1" and C++ "a::b" are left); times and MAC addresses are not addresses.
// - jwt: eyJ….eyJ….signature; cloud-key: AWS AKIA/ASIA ids, AWS secrets under an aws…secret label, GCP
//   AIza keys, service-account private_key_id, Azure AccountKey/SharedAccessKey and SAS sig=.
// - private-key: PEM private-key blocks (cut-off blocks to the end of the text; certificates and public
//   keys are not secrets); hex/base64 32- or 64-byte values under a seed/private_key/signing_key label.
// - bearer-token: "Bearer <token>", and any credential after an Authorization label.
// - url-password: the password of scheme://user:password@host, only the password.
// - secret: 24..512-char tokens mixing upper, lower and digits, Shannon entropy >= 3.9 bits/char, not
//   mostly words; never hex-only (hashes, git SHAs, UUIDs) nor under a digest label (sha256-…, etag), nor
//   data-URI payloads (…;base64,…). Random-looking ids of that length (some payment-provider object ids)
//   are flagged: across organisations an unexplained random token is treated as a credential.
// - the mesh's own identifiers are not findings: libp2p ed25519 peer ids ("12D3KooW" and 44 base58
//   characters, alone or as a /p2p/ segment of a multiaddr; the rest of the multiaddr is judged on its
//   own), addresses inside multiaddrs ("/ip4/10.0.0.5/tcp/7400", "/ip6/2001:db8::1/tcp/7400": every
//   member announces them anyway), 64-hex public keys (hex is never a generic secret; only under a
//   seed/private-key label) and task references ("3.17.0"). A 32-byte secret encoded as a peer id
//   passes: the shape says nothing about who made it.

const TEXT_LENGTH_MIN = 6
const TOKEN_RUN_MIN = 16
const BEARER_LENGTH_MIN = 8
const SECRET_LENGTH_MIN = 24
const SECRET_LENGTH_MAX = 512
const SECRET_BITS_PER_CHAR_MIN = 3.9
const SECRET_WORDY_RATIO_MAX = 0.5
const EMAIL_LOCAL_MAX = 64
const EMAIL_DOMAIN_MAX = 253
const URL_USERINFO_MAX = 512
const LABEL_LENGTH_MAX = 48

const JWT = /(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g
const AWS_KEY_ID = /(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])/g
const GCP_API_KEY = /(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])/g
const AZURE_SAS_SIG = /[?&]sig=([A-Za-z0-9%+/=]{16,})/g
const BEARER = /\bbearer\s+([A-Za-z0-9._~+/-]{8,}=*)/gi // {8,}: BEARER_LENGTH_MIN
const AUTHORIZATION = /\bauthorization["']?\s*[:=]\s*["']?(?:(?:basic|token|digest)\s+)?([A-Za-z0-9._~+/-]{8,}=*)/gi
const IBAN_CANDIDATE = /\b[A-Z]{2}\d{2}[A-Z0-9 ]{10,40}/g
const IPV6_CANDIDATE = /(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:(?:\.\d{1,3}){3})?(?![\w:]|\.\d)/g
const MULTIADDR_IP6 = '/ip6/'
const PEM_BEGIN = '-----BEGIN '
const DATA_URI_MARK = 'base64,'
const PEM_DASHES = '-----'
const FILE_EXTENSIONS = new Set(['png', 'jpg', 'jpeg', 'gif', 'svg', 'webp', 'bmp', 'ico', 'pdf'])
const HASH_LABEL = /^(?:sha1|sha224|sha256|sha384|sha512|md5|blake2b|blake3)[-_]/i
const WORD = /[A-Z]?[a-z]{4,}/g
const VOWELS = 'aeiouAEIOU'
const WORD_VOWEL_RATIO_MIN = 0.25
const HASH_NAMES = new Set(['hash', 'digest', 'checksum', 'etag', 'integrity', 'fingerprint', 'sha', 'commit'])

const AWS_SECRET_VALUE = /^[A-Za-z0-9/+]{40}$/
const AZURE_KEY_VALUE = /^[A-Za-z0-9+/]{20,}={0,2}$/
const KEY_ID_VALUE = /^[0-9a-fA-F]{40}$/
const SEED_LABEL = /(?:seed|privatekey|secretkey|signingkey|privkey)$/
const PEER_ID_PREFIX = '12D3KooW'
const PEER_ID = /^12D3KooW[1-9A-HJ-NP-Za-km-z]{44}$/
const SEED_VALUE = /^(?:[0-9a-fA-F]{64}|[0-9a-fA-F]{128}|[A-Za-z0-9+/_-]{43}=?|[A-Za-z0-9+/_-]{86}(?:==)?)$/

/** All findings in text, overlaps resolved by category priority, ordered by start. */
export function detectSpans (text: string, labelHint = ''): readonly Span[] {
  if (text.length < TEXT_LENGTH_MIN) return NO_SPANS
  const features = scanFeatures(text)
  const spans = scratchSpans
  spans.length = 0
  if (features.digits >= 4) findNumericSpans(text, spans)
  if (features.ats > 0) {
    findEmails(text, spans)
    findUrlPasswords(text, spans)
  }
  if (features.colons >= 2) findIpv6(text, spans)
  if (features.uppers >= 2 && features.digits >= 10) findIbans(text, spans)
  if (features.runs.length > 0) findTokenSecrets(text, features.runs, labelHint, spans)
  if (features.runLongest >= BEARER_LENGTH_MIN) findLabelledTokens(text, features, spans)
  return spans.length === 0 ? NO_SPANS : resolveOverlaps(spans)
}

const NO_SPANS: readonly Span[] = Object.freeze([])
const scratchSpans: Span[] = []

interface Features {
  digits: number
  uppers: number
  ats: number
  colons: number
  runLongest: number
  /** Flat [start, end, start, end, …] of runs of [A-Za-z0-9+/_-] at least TOKEN_RUN_MIN long. */
  runs: number[]
}

/** Reused across calls (the module is synchronous and not re-entrant): one string, no allocation. */
const features: Features = { digits: 0, uppers: 0, ats: 0, colons: 0, runLongest: 0, runs: [] }

function scanFeatures (text: string): Features {
  let digits = 0
  let uppers = 0
  let ats = 0
  let colons = 0
  let runLongest = 0
  const runs = features.runs
  runs.length = 0
  let runStart = -1
  for (let index = 0; index <= text.length; index++) {
    const code = index < text.length ? text.charCodeAt(index) : 0
    let token = true
    if (isDigit(code)) digits++
    else if (isUpper(code)) uppers++
    else if (!(isLower(code) || code === 43 || code === 47 || code === 95 || code === 45)) {
      token = false
      if (code === 64) ats++
      else if (code === 58) colons++
    }
    if (token) {
      if (runStart < 0) runStart = index
    } else if (runStart >= 0) {
      const runLength = index - runStart
      if (runLength > runLongest) runLongest = runLength
      if (runLength >= TOKEN_RUN_MIN) runs.push(runStart, index)
      runStart = -1
    }
  }
  features.digits = digits
  features.uppers = uppers
  features.ats = ats
  features.colons = colons
  features.runLongest = runLongest
  return features
}

function findTokenSecrets (text: string, runs: number[], labelHint: string, spans: Span[]): void {
  if (text.includes('eyJ')) collect(JWT, text, 'jwt', spans)
  if (text.includes('AKIA') || text.includes('ASIA')) collect(AWS_KEY_ID, text, 'cloud-key', spans)
  if (text.includes('AIza')) collect(GCP_API_KEY, text, 'cloud-key', spans)
  const peerIds = text.includes(PEER_ID_PREFIX)
  for (let index = 0; index < runs.length; index += 2) {
    const start = runs[index] as number
    const end = runs[index + 1] as number
    if (peerIds) forEachPeerIdFreePart(text, start, end, (partStart, partEnd) => judgeToken(text, partStart, partEnd, labelHint, spans))
    else judgeToken(text, start, end, labelHint, spans)
  }
}

function judgeToken (text: string, start: number, runEnd: number, labelHint: string, spans: Span[]): void {
  const end = paddedEnd(text, runEnd)
  const value = text.slice(start, end)
  const label = labelBefore(text, start, labelHint)
  const labelled = label === undefined ? undefined : labelledCategory(label, value)
  if (labelled !== undefined) spans.push({ start, end, category: labelled })
  else if (!text.startsWith(DATA_URI_MARK, start - DATA_URI_MARK.length) && isHighEntropySecret(value, label)) {
    spans.push({ start, end, category: 'secret' })
  }
}

/** The parts of a token run between its '/'-separated peer-id segments ("…/tcp/7400/p2p/12D3KooW…"). */
function forEachPeerIdFreePart (text: string, start: number, end: number, judge: (start: number, end: number) => void): void {
  let partStart = start
  let segmentStart = start
  for (let index = start; index <= end; index++) {
    if (index < end && text.charCodeAt(index) !== 47) continue
    if (index - segmentStart === 52 && PEER_ID.test(text.slice(segmentStart, index))) {
      if (segmentStart - 1 > partStart) judge(partStart, segmentStart - 1)
      partStart = index + 1
    }
    segmentStart = index + 1
  }
  if (partStart < end) judge(partStart, end)
}

/**
 * Findings marked by a keyword rather than by their shape: bearer tokens (a run of 8+), and PEM blocks
 * and SAS signatures (both need a run of TOKEN_RUN_MIN: a base64 line, the signature).
 */
function findLabelledTokens (text: string, features: Features, spans: Span[]): void {
  const longRuns = features.runs.length > 0
  const shouting = features.uppers >= 5
  if (longRuns && text.includes(PEM_BEGIN)) findPrivateKeyBlocks(text, spans)
  if (text.includes('earer') || (shouting && text.includes('EARER'))) {
    collectGroup(BEARER, text, 'bearer-token', spans, bearerTokenLike)
  }
  if (text.includes('uthorization') || (shouting && text.includes('UTHORIZATION'))) {
    collectGroup(AUTHORIZATION, text, 'bearer-token', spans)
  }
  if (longRuns && text.includes('sig=')) collectGroup(AZURE_SAS_SIG, text, 'cloud-key', spans)
}

function collect (pattern: RegExp, text: string, category: Category, spans: Span[]): void {
  pattern.lastIndex = 0
  for (let match = pattern.exec(text); match !== null; match = pattern.exec(text)) {
    spans.push({ start: match.index, end: match.index + match[0].length, category })
  }
}

/** Like collect, for patterns whose group 1 (the value) ends the match: only the value is a finding. */
function collectGroup (
  pattern: RegExp, text: string, category: Category, spans: Span[], accept: (value: string) => boolean = () => true
): void {
  pattern.lastIndex = 0
  for (let match = pattern.exec(text); match !== null; match = pattern.exec(text)) {
    const value = match[1] as string
    const end = match.index + match[0].length
    if (accept(value)) spans.push({ start: end - value.length, end, category })
  }
}

/**
 * "bearer bonds" is prose: a token is long, or has a digit or a token symbol in it (after
 * "Authorization:" anything goes).
 */
function bearerTokenLike (value: string): boolean {
  return value.length >= 16 || /[\d._~+/=-]/.test(value)
}

function paddedEnd (text: string, end: number): number {
  let padded = end
  while (padded < end + 2 && text.charCodeAt(padded) === 61) padded++
  return padded
}

/**
 * The name in `name = value`, `name: "value"` or `"name": "value"` right before a value starting at start,
 * normalized; the JSON field name (labelHint) when the value starts the string.
 */
function labelBefore (text: string, start: number, labelHint: string): string | undefined {
  let index = start - 1
  while (index >= 0 && start - index <= 3 && isQuoteOrSpace(text.charCodeAt(index))) index--
  if (index < 0) return labelHint === '' ? undefined : labelHint
  const separator = text.charCodeAt(index)
  if (separator !== 58 && separator !== 61) return undefined
  index--
  const nameEnd = index + 1 - skipBack(text, index)
  let nameStart = nameEnd
  while (nameStart > 0 && nameEnd - nameStart < LABEL_LENGTH_MAX && isNameChar(text.charCodeAt(nameStart - 1))) nameStart--
  return nameStart === nameEnd ? undefined : normalizeName(text.slice(nameStart, nameEnd))
}

function skipBack (text: string, index: number): number {
  let skipped = 0
  while (skipped < 3 && index - skipped >= 0 && isQuoteOrSpace(text.charCodeAt(index - skipped))) skipped++
  return skipped
}

function isQuoteOrSpace (code: number): boolean {
  return code === 32 || code === 34 || code === 39 || code === 9
}

function isNameChar (code: number): boolean {
  return isWordChar(code) || code === 45 || code === 46
}

/** Secrets recognised by the name they are stored under plus the shape of the value. */
function labelledCategory (label: string, value: string): Category | undefined {
  if (label.includes('aws') && label.includes('secret')) return AWS_SECRET_VALUE.test(value) ? 'cloud-key' : undefined
  if (label.endsWith('accountkey') || label.endsWith('sharedaccesskey')) {
    return AZURE_KEY_VALUE.test(value) ? 'cloud-key' : undefined
  }
  if (label.endsWith('privatekeyid')) return KEY_ID_VALUE.test(value) ? 'cloud-key' : undefined
  if (SEED_LABEL.test(label) && SEED_VALUE.test(value)) return 'private-key'
  return undefined
}

/**
 * Generic secrets: long tokens mixing upper, lower and digits with high Shannon entropy. Hex-only tokens
 * (git SHAs, digests, UUIDs with their dashes) are never generic secrets — a hex secret is found only by
 * its label; tokens labelled as digests (`sha256-…`, `sha256: …`) are left too; so are blobs longer than
 * SECRET_LENGTH_MAX (encoded files, not keys).
 */
function isHighEntropySecret (value: string, label: string | undefined): boolean {
  if (value.length < SECRET_LENGTH_MIN || value.length > SECRET_LENGTH_MAX) return false
  if (HASH_LABEL.test(value)) return false
  if (label !== undefined && (HASH_NAMES.has(label) || HASH_LABEL.test(label + '-'))) return false
  let upper = false
  let lower = false
  let digit = false
  let nonHex = false
  for (let index = 0; index < value.length; index++) {
    const code = value.charCodeAt(index)
    if (isDigit(code)) digit = true
    else if (isUpper(code)) upper = true
    else if (isLower(code)) lower = true
    if (!isHexOrDash(code)) nonHex = true
  }
  if (!nonHex || !(upper && lower && digit)) return false
  return shannonBitsPerChar(value) >= SECRET_BITS_PER_CHAR_MIN && !wordy(value)
}

/**
 * "ProductCategoryElectronics2024" has the entropy of a key but is made of words: half or more of it in
 * runs of 4+ lower-case letters with a word's share of vowels. Random base62 looks like that about 0.1% of
 * the time at 24 characters (0.03% at 32).
 */
function wordy (value: string): boolean {
  let wordChars = 0
  WORD.lastIndex = 0
  for (let match = WORD.exec(value); match !== null; match = WORD.exec(value)) {
    const word = match[0]
    let vowels = 0
    for (let index = 0; index < word.length; index++) if (VOWELS.includes(word[index] as string)) vowels++
    if (vowels >= word.length * WORD_VOWEL_RATIO_MIN) wordChars += word.length
  }
  return wordChars >= value.length * SECRET_WORDY_RATIO_MAX
}

function isHexOrDash (code: number): boolean {
  return isDigit(code) || (code >= 65 && code <= 70) || (code >= 97 && code <= 102) || code === 45
}

// Scratch for shannonBitsPerChar: counts by code unit (values are ASCII token runs of <= 512), and
// which slots are in use, so only those are summed and reset.
const symbolCounts = new Uint16Array(128)
const symbolsSeen = new Uint8Array(128)

function shannonBitsPerChar (value: string): number {
  let distinct = 0
  for (let index = 0; index < value.length; index++) {
    const slot = value.charCodeAt(index) & 127
    const count = symbolCounts[slot] as number
    if (count === 0) symbolsSeen[distinct++] = slot
    symbolCounts[slot] = count + 1
  }
  let bits = 0
  for (let index = 0; index < distinct; index++) {
    const slot = symbolsSeen[index] as number
    const probability = (symbolCounts[slot] as number) / value.length
    bits -= probability * Math.log2(probability)
    symbolCounts[slot] = 0
  }
  return bits
}

function findPrivateKeyBlocks (text: string, spans: Span[]): void {
  for (let begin = text.indexOf(PEM_BEGIN); begin >= 0; begin = text.indexOf(PEM_BEGIN, begin + 1)) {
    const labelStart = begin + PEM_BEGIN.length
    const labelEnd = text.indexOf(PEM_DASHES, labelStart)
    if (labelEnd < 0 || labelEnd - labelStart > 40) continue
    const label = text.slice(labelStart, labelEnd)
    if (!label.endsWith('PRIVATE KEY') && !label.endsWith('PRIVATE KEY BLOCK')) continue
    const endMarker = `-----END ${label}-----`
    const endMarkerAt = text.indexOf(endMarker, labelEnd)
    // A block cut off before its END line is still a key: redact to the end of the text.
    const end = endMarkerAt < 0 ? text.length : endMarkerAt + endMarker.length
    spans.push({ start: begin, end, category: 'private-key' })
    begin = end - 1
  }
}

function isEmailLocalChar (code: number): boolean {
  return isNameChar(code) || code === 43 || code === 37
}

function isDomainChar (code: number): boolean {
  return isAlnum(code) || code === 45 || code === 46
}

/** Emails by expansion around each '@' (bounded both ways), never by a backtracking regex. */
function findEmails (text: string, spans: Span[]): void {
  for (let at = text.indexOf('@'); at >= 0; at = text.indexOf('@', at + 1)) {
    let start = at
    while (start > 0 && at - start <= EMAIL_LOCAL_MAX && isEmailLocalChar(text.charCodeAt(start - 1))) start--
    if (at - start > EMAIL_LOCAL_MAX || start === at) continue
    if (text.charCodeAt(start) === 46 || text.charCodeAt(at - 1) === 46) continue
    let end = at + 1
    while (end < text.length && end - at <= EMAIL_DOMAIN_MAX && isDomainChar(text.charCodeAt(end))) end++
    while (end > at + 1 && (text.charCodeAt(end - 1) === 46 || text.charCodeAt(end - 1) === 45)) end--
    if (end - at > EMAIL_DOMAIN_MAX || !domainValid(text.slice(at + 1, end))) continue
    spans.push({ start, end, category: 'email' })
  }
}

function domainValid (domain: string): boolean {
  const labels = domain.split('.')
  if (labels.length < 2) return false
  const tld = labels[labels.length - 1] as string
  if (!/^[A-Za-z]{2,24}$/.test(tld) || FILE_EXTENSIONS.has(tld.toLowerCase())) return false
  return labels.every((label) => label.length > 0 && label[0] !== '-' && label[label.length - 1] !== '-')
}

/** `scheme://user:password@host`: the password only (the user may be an email, found on its own). */
function findUrlPasswords (text: string, spans: Span[]): void {
  for (let slashes = text.indexOf('://'); slashes >= 0; slashes = text.indexOf('://', slashes + 3)) {
    const userStart = slashes + 3
    let colon = -1
    let at = -1
    for (let index = userStart; index < text.length && index - userStart < URL_USERINFO_MAX; index++) {
      const code = text.charCodeAt(index)
      if (endsAuthority(code)) break
      if (code === 64) at = index
      else if (code === 58 && colon < 0) colon = index
    }
    if (colon >= 0 && colon + 1 < at) spans.push({ start: colon + 1, end: at, category: 'url-password' })
  }
}

function endsAuthority (code: number): boolean {
  // '/', '?', '#', whitespace, quotes, '<', '>'
  return code === 47 || code === 63 || code === 35 || code <= 32 || code === 34 || code === 39 || code === 60 || code === 62
}

function findIbans (text: string, spans: Span[]): void {
  IBAN_CANDIDATE.lastIndex = 0
  for (let match = IBAN_CANDIDATE.exec(text); match !== null; match = IBAN_CANDIDATE.exec(text)) {
    const end = ibanEnd(text, match.index)
    if (end > 0) spans.push({ start: match.index, end, category: 'iban' })
    IBAN_CANDIDATE.lastIndex = end > 0 ? end : match.index + 1
  }
}

/** End of a valid IBAN starting at start (compact, or spaced in groups of four), else -1. */
function ibanEnd (text: string, start: number): number {
  const length = IBAN_LENGTHS.get(text.slice(start, start + 2))
  if (length === undefined) return -1
  let compact = ''
  let index = start
  while (compact.length < length && index < text.length) {
    const code = text.charCodeAt(index)
    if (code === 32 && compact.length % 4 === 0 && compact.length > 0 && text.charCodeAt(index - 1) !== 32) {
      index++
      continue
    }
    if (!isDigit(code) && !isUpper(code)) return -1
    compact += text[index]
    index++
  }
  if (compact.length !== length || isDomainChar(text.charCodeAt(index))) return -1
  return ibanValid(compact) ? index : -1
}

function findIpv6 (text: string, spans: Span[]): void {
  IPV6_CANDIDATE.lastIndex = 0
  for (let match = IPV6_CANDIDATE.exec(text); match !== null; match = IPV6_CANDIDATE.exec(text)) {
    if (text.startsWith(MULTIADDR_IP6, match.index - MULTIADDR_IP6.length)) continue
    if (ipv6Valid(match[0])) spans.push({ start: match.index, end: match.index + match[0].length, category: 'ip-address' })
  }
}

/**
 * RFC 4291 text forms: eight groups, or fewer around one '::', optionally ending in a dotted quad.
 * Fewer than four hex digits in all ("::1", "a::b" in C++ text) is not worth calling an address.
 */
function ipv6Valid (candidate: string): boolean {
  let address = candidate
  let groupsMax = 8
  const dot = address.indexOf('.')
  if (dot >= 0) {
    const lastColon = address.lastIndexOf(':')
    const octets = address.slice(lastColon + 1).split('.')
    if (octets.length !== 4 || octets.some((octet) => !/^\d{1,3}$/.test(octet) || Number(octet) > 255)) return false
    address = address.slice(0, lastColon + 1) + '0'
    groupsMax = 7
  }
  const halves = address.split('::')
  if (halves.length > 2) return false
  const groups = halves.flatMap((half) => half === '' ? [] : half.split(':'))
  if (groups.some((group) => group.length === 0 || group.length > 4)) return false
  const hexDigits = groups.reduce((sum, group) => sum + group.length, 0) - (dot >= 0 ? 1 : 0)
  if (hexDigits < 4) return false
  return halves.length === 2 ? groups.length < groupsMax : groups.length === groupsMax
}

/** A fresh array (spans is the scratch one). */
function resolveOverlaps (spans: Span[]): Span[] {
  if (spans.length === 1) return [spans[0] as Span]
  const byPriority = spans.slice().sort((a, b) => categoryRank(a.category) - categoryRank(b.category) || a.start - b.start)
  const accepted: Span[] = []
  for (const span of byPriority) {
    if (accepted.every((other) => span.end <= other.start || span.start >= other.end)) accepted.push(span)
  }
  return accepted.sort((a, b) => a.start - b.start)
}

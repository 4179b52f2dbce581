import assert from 'node:assert/strict'
import {
  createSanitizer, CROSS_ORG_MODES, SanitizeBlockedError, SanitizeConfigError, SanitizeInputError, type Category
} from '../../sanitize/index.js'

const SALT = new Uint8Array(32).fill(7)
const OTHER_SALT = new Uint8Array(32).fill(9)
const EMAIL = 'alice.smith@example.com'
const CARD = '4111 1111 1111 1111'
const PEM = '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n-----END PRIVATE KEY-----'
const PSEUDONYM = /^\[email:[0-9a-f]{10}\]$/

function blockedBy (run: () => unknown): SanitizeBlockedError {
  try {
    run()
  } catch (error) {
    assert.ok(error instanceof SanitizeBlockedError)
    return error
  }
  assert.fail('expected SanitizeBlockedError')
}

describe('sanitizer modes', () => {
  it('mask replaces each finding with its category and counts it', () => {
    const { value, report } = createSanitizer().sanitizeText(`mail ${EMAIL} card ${CARD} and ${EMAIL}`)
    assert.equal(value, 'mail [REDACTED:email] card [REDACTED:card] and [REDACTED:email]')
    assert.deepEqual(report, { redactions: { email: 2, card: 1 }, blocked: false })
  })

  it('hash gives keyed pseudonyms: stable per salt, different across salts, one per value', () => {
    const first = createSanitizer({ modes: { email: 'hash' }, salt: SALT })
    const again = createSanitizer({ modes: { email: 'hash' }, salt: SALT })
    const other = createSanitizer({ modes: { email: 'hash' }, salt: OTHER_SALT })
    const pseudonym = first.sanitizeText(EMAIL).value
    assert.match(pseudonym, PSEUDONYM)
    assert.equal(first.sanitizeText(EMAIL).value, pseudonym)
    assert.equal(again.sanitizeText(EMAIL).value, pseudonym)
    assert.equal(first.sanitizeText(EMAIL.toUpperCase()).value, pseudonym, 'an email is case-insensitive')
    assert.notEqual(other.sanitizeText(EMAIL).value, pseudonym)
    assert.notEqual(first.sanitizeText('bob@example.com').value, pseudonym)
    assert.equal(first.sanitizeText(EMAIL).report.redactions.email, 1)
  })

  it('hash pseudonyms of one value differ across categories and ignore formatting', () => {
    const sanitizer = createSanitizer({ modes: { card: 'hash', phone: 'hash' }, salt: SALT })
    const spaced = sanitizer.sanitizeText(CARD).value
    assert.match(spaced, /^\[card:[0-9a-f]{10}\]$/)
    assert.equal(sanitizer.sanitizeText(CARD.replace(/ /g, '-')).value, spaced)
    assert.equal(sanitizer.sanitizeText(CARD.replace(/ /g, '')).value, spaced)
  })

  it('drop removes the matched text, the field, or the array element', () => {
    const sanitizer = createSanitizer({ modes: { email: 'drop', card: 'drop', 'sensitive-field': 'drop' }, salt: SALT })
    assert.equal(sanitizer.sanitizeText(`write to ${EMAIL} today`).value, 'write to  today')
    const { value, report } = sanitizer.sanitize({ password: 'x1', name: 'Ann', cards: [4111111111111111, 7], [EMAIL]: 1 })
    assert.deepEqual(value, { name: 'Ann', cards: [7] })
    assert.deepEqual(report.redactions, { 'sensitive-field': 1, card: 1, email: 1 })
  })

  it('block refuses the whole send, listing categories and counts but never the values', () => {
    const sanitizer = createSanitizer({ modes: { email: 'block' } })
    const error = blockedBy(() => sanitizer.sanitize({ a: [`to ${EMAIL}`], b: { key: PEM }, c: CARD }))
    assert.equal(error.code, 'sanitize-blocked')
    assert.deepEqual(error.categories, ['private-key', 'email'])
    assert.deepEqual(error.report, { redactions: { email: 1, 'private-key': 1, card: 1 }, blocked: true })
    const everything = JSON.stringify({ message: error.message, report: error.report, categories: error.categories })
    assert.ok(!everything.includes('alice') && !everything.includes('MC4CAQ') && !everything.includes('4111'))
  })

  it('keep leaves a finding as it is, uncounted, and still shields it from weaker categories', () => {
    const sanitizer = createSanitizer({ modes: { 'ip-address': 'keep' } })
    const { value, report } = sanitizer.sanitizeText('from 10.1.2.3 by bob@example.com')
    assert.equal(value, 'from 10.1.2.3 by [REDACTED:email]')
    assert.deepEqual(report.redactions, { email: 1 })
  })

  it('defaults suit cross-organisation sends: mask everything, block private keys', () => {
    const blocking = Object.entries(CROSS_ORG_MODES).filter(([, mode]) => mode === 'block').map(([category]) => category)
    assert.deepEqual(blocking, ['private-key'])
    assert.ok(Object.entries(CROSS_ORG_MODES).every(([category, mode]) => category === 'private-key' || mode === 'mask'))
    const error = blockedBy(() => createSanitizer().sanitizeText(`key:\n${PEM}`))
    assert.deepEqual(error.categories, ['private-key'])
  })
})

describe('sanitizer field names', () => {
  it('scrubs values of sensitive names at any depth, whatever their case, dashes or underscores', () => {
    const input = {
      db_password: 'hunter2',
      nested: [{ deeper: { 'X-API-Key': 'k-123', ApiKey: 42, client_secret: { a: 1 }, Authorization: ['x'] } }],
      max_tokens: 512,
      secretary: 'Jane',
      password_policy: 'strict'
    }
    const { value, report } = createSanitizer().sanitize(input)
    assert.deepEqual(value, {
      db_password: '[REDACTED:sensitive-field]',
      nested: [{
        deeper: {
          'X-API-Key': '[REDACTED:sensitive-field]',
          ApiKey: '[REDACTED:sensitive-field]',
          client_secret: '[REDACTED:sensitive-field]',
          Authorization: '[REDACTED:sensitive-field]'
        }
      }],
      max_tokens: 512,
      secretary: 'Jane',
      password_policy: 'strict'
    })
    assert.deepEqual(report.redactions, { 'sensitive-field': 5 })
  })

  it('reports a sensitive value under the most specific category found in it', () => {
    const sanitizer = createSanitizer({ modes: { 'private-key': 'mask' } })
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U'
    const { value, report } = sanitizer.sanitize({ private_key: PEM, token: jwt, seed: 'ab'.repeat(32), note: 'seed: 42' })
    assert.deepEqual(value, { private_key: '[REDACTED:private-key]', token: '[REDACTED:jwt]', seed: '[REDACTED:private-key]', note: 'seed: 42' })
    assert.deepEqual(report.redactions, { 'private-key': 2, jwt: 1 })
    assert.deepEqual(blockedBy(() => createSanitizer().sanitize({ private_key: PEM })).categories, ['private-key'])
  })

  it('replaces a non-string sensitive value whole, without judging what is inside', () => {
    const { value, report } = createSanitizer().sanitize({ credentials: { private_key: PEM, user: EMAIL } })
    assert.deepEqual(value, { credentials: '[REDACTED:sensitive-field]' })
    assert.deepEqual(report.redactions, { 'sensitive-field': 1 })
  })

  it('leaves null, booleans and empty strings under sensitive names (nothing to hide)', () => {
    const input = { password: null, token: '', secret: false }
    const { value, report } = createSanitizer().sanitize(input)
    assert.deepEqual(value, input)
    assert.deepEqual(report.redactions, {})
  })

  it('takes extra sensitive names from options', () => {
    const { value } = createSanitizer({ sensitiveNames: ['Customer-Ref'] }).sanitize({ customer_ref: 'C-1', other: 'C-2' })
    assert.deepEqual(value, { customer_ref: '[REDACTED:sensitive-field]', other: 'C-2' })
  })

  it('scrubs findings in field names, keeping twins apart', () => {
    const { value, report } = createSanitizer().sanitize({ [EMAIL]: 1, 'bob@example.com': 2, plain: 3 })
    assert.deepEqual(value, { '[REDACTED:email]': 1, '[REDACTED:email]#2': 2, plain: 3 })
    assert.equal(report.redactions.email, 2)
  })

  it('keeps a "__proto__" field as data', () => {
    const input = JSON.parse('{"__proto__": {"password": "p"}, "a": "x@example.org"}') as Record<string, unknown>
    const { value } = createSanitizer().sanitize(input)
    const clean = value as Record<string, unknown>
    assert.equal(Object.getPrototypeOf(clean), Object.prototype)
    assert.deepEqual(Object.getOwnPropertyDescriptor(clean, '__proto__')?.value, { password: '[REDACTED:sensitive-field]' })
    assert.equal(clean.a, '[REDACTED:email]')
  })
})

describe('sanitizer input handling', () => {
  it('never mutates its input and shares only unchanged subtrees', () => {
    const input = { order: { id: 'ORD-1', items: [{ sku: 'A' }] }, contact: { email: EMAIL, tags: ['x'] }, list: ['a', CARD] }
    const before = structuredClone(input)
    const { value } = createSanitizer().sanitize(input)
    assert.deepEqual(input, before)
    const clean = value as typeof input
    assert.equal(clean.order, input.order, 'an unchanged subtree is shared')
    assert.notEqual(clean.contact, input.contact)
    assert.equal(clean.contact.tags, input.contact.tags)
    assert.deepEqual(clean.list, ['a', '[REDACTED:card]'])
    assert.notEqual(clean.list, input.list)
  })

  it('passes JSON scalars through and scrubs card numbers stored as numbers', () => {
    const sanitizer = createSanitizer()
    assert.deepEqual(sanitizer.sanitize([1, 2.5, -3, true, null, 'plain', 1700000000000, 4111111111111111]).value,
      [1, 2.5, -3, true, null, 'plain', 1700000000000, '[REDACTED:card]'])
  })

  it('rejects values that are not JSON with a typed error', () => {
    const sanitizer = createSanitizer()
    for (const bad of [undefined, () => 1, 10n, Symbol('s'), Number.NaN, Infinity, new Date(0), new Map(), { a: undefined }]) {
      assert.throws(() => sanitizer.sanitize(bad), (error: unknown) =>
        error instanceof SanitizeInputError && error.code === 'sanitize-not-json')
    }
    assert.throws(() => sanitizer.sanitize({ password: { when: new Date(0) } }), { code: 'sanitize-not-json' })
    assert.throws(() => sanitizer.sanitizeText(42 as unknown as string), { code: 'sanitize-not-json' })
  })

  it('enforces depth, string length and node limits, and stops cycles at the depth limit', () => {
    const sanitizer = createSanitizer({ depthMax: 3, stringLengthMax: 10, nodesMax: 5 })
    assert.deepEqual(sanitizer.sanitize({ a: { b: { c: 'ok' } } }).value, { a: { b: { c: 'ok' } } })
    assert.throws(() => sanitizer.sanitize({ a: { b: { c: { d: 1 } } } }), { code: 'sanitize-depth-exceeded' })
    assert.throws(() => sanitizer.sanitize({ password: { b: { c: { d: 1 } } } }), { code: 'sanitize-depth-exceeded' })
    assert.throws(() => sanitizer.sanitize('x'.repeat(11)), { code: 'sanitize-string-too-long' })
    assert.throws(() => sanitizer.sanitize({ ['k'.repeat(11)]: 1 }), { code: 'sanitize-string-too-long' })
    assert.throws(() => sanitizer.sanitizeText('x'.repeat(11)), { code: 'sanitize-string-too-long' })
    assert.throws(() => sanitizer.sanitize([1, 2, 3, 4, 5]), { code: 'sanitize-nodes-exceeded' })
    const cycle: Record<string, unknown> = {}
    cycle.self = cycle
    assert.throws(() => sanitizer.sanitize(cycle), { code: 'sanitize-depth-exceeded' })
  })

  it('rejects bad configuration with a typed error', () => {
    const bad: Array<Parameters<typeof createSanitizer>[0]> = [
      { modes: { nope: 'mask' } as unknown as Record<Category, 'mask'> },
      { modes: { email: 'shred' as 'mask' } },
      { modes: { email: 'hash' } },
      { modes: { email: 'hash' }, salt: new Uint8Array(8) },
      { depthMax: 0 },
      { depthMax: 1_000_000 },
      { nodesMax: 1.5 }
    ]
    for (const options of bad) {
      assert.throws(() => createSanitizer(options), (error: unknown) => error instanceof SanitizeConfigError && error.code === 'sanitize-config')
    }
  })

  it('stays linear on adversarial text (no catastrophic backtracking)', () => {
    const sanitizer = createSanitizer({ stringLengthMax: 1_000_000, modes: { 'private-key': 'mask' } })
    const hostile = [
      '1 '.repeat(100_000), 'a@'.repeat(100_000), ':'.repeat(200_000), '://a:b'.repeat(30_000),
      '-----BEGIN PRIVATE KEY-----'.repeat(7_000), 'eyJ'.repeat(60_000) + '.', 'A1b2'.repeat(50_000),
      'DE89 '.repeat(40_000), '(1'.repeat(100_000), '(1 '.repeat(60_000), 'Bearer '.repeat(28_000), '1.'.repeat(100_000)
    ]
    for (const text of hostile) assert.equal(typeof sanitizer.sanitizeText(text).value, 'string')
  })
})

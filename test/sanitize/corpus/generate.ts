import { writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Prng } from '../../../simulations/world/prng.js'

// Writes corpus.jsonl: labelled lines {text, expected: [{category, match}]} — true positives for every
// detector category in varied surroundings, and look-alikes that must stay untouched (expected: []).
// Check digits are *computed* here (Luhn completion, ISO 7064 check digits), independently of the
// validators under test. Deterministic: `npx tsx test/sanitize/corpus/generate.ts` rewrites the same files;
// `… generate.ts <seed> <dir>` writes another draw elsewhere (to check the detectors generalise).

interface Expected { category: string, match: string }
interface Line { text: string, expected: Expected[] }

const [seedArgument, dirArgument] = process.argv.slice(2)
const prng = new Prng(Number(seedArgument ?? 20240115))
const lines: Line[] = []
const POSITIVES_PER_CATEGORY = 40

const UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'
const LOWER = 'abcdefghijklmnopqrstuvwxyz'
const DIGITS = '0123456789'
const HEX = '0123456789abcdef'
const BASE62 = UPPER + LOWER + DIGITS
const BASE64 = BASE62 + '+/'
const BASE64URL = BASE62 + '-_'

function chars (alphabet: string, length: number): string {
  let out = ''
  for (let i = 0; i < length; i++) out += alphabet[prng.nextU32() % alphabet.length]
  return out
}

/** Random base62 with at least one upper, lower and digit (what real keys look like). */
function mixed (length: number): string {
  for (;;) {
    const candidate = chars(BASE62, length)
    if (/[A-Z]/.test(candidate) && /[a-z]/.test(candidate) && /\d/.test(candidate)) return candidate
  }
}

function positive (category: string, template: (value: string) => string, value: string): void {
  lines.push({ text: template(value), expected: [{ category, match: value }] })
}

function fill (category: string, templates: Array<(v: string) => string>, values: () => string): void {
  for (let i = 0; i < POSITIVES_PER_CATEGORY; i++) positive(category, templates[i % templates.length]!, values())
}

// ---- email
const FIRST = ['alice', 'bob', 'carol', 'dmitri', 'eve', 'fatima', 'gustav', 'hiro', 'ines', 'jamal', 'ke.li', 'o_brien']
const DOMAINS = ['example.com', 'mail.example.org', 'corp.example.co.uk', 'example.de', 'uni-example.edu', 'example.io']
fill('email', [
  (v) => `Contact: ${v}`,
  (v) => `Reply-To: "Support" <${v}>`,
  (v) => `mailto:${v}?subject=Invoice`,
  (v) => `{"customer":{"email":"${v}","tier":"gold"}}`,
  (v) => `Forwarded by ${v}, see thread below.`,
  (v) => `user=${v} action=login status=ok`
], () => {
  const first = prng.pick(FIRST)
  const shapes = [`${first}`, `${first}.${prng.pick(FIRST)}`, `${first}+${chars(LOWER, 4)}`, `${first}${prng.intInclusive(1, 99)}`]
  return `${prng.pick(shapes)}@${prng.pick(DOMAINS)}`
})

// ---- phone
const PHONES = () => {
  const d = (n: number): string => chars(DIGITS, n)
  const area = `${prng.intInclusive(2, 9)}${d(2)}`
  return prng.pick([
    `+1 ${area} ${d(3)} ${d(4)}`, `+1-${area}-${d(3)}-${d(4)}`, `+1${area}${d(7)}`, `(${area}) ${d(3)}-${d(4)}`,
    `${area}-${d(3)}-${d(4)}`, `${area}.${d(3)}.${d(4)}`, `1-${area}-${d(3)}-${d(4)}`, `+44 20 ${d(4)} ${d(4)}`,
    `+44 7700 ${d(6)}`, `020 ${d(4)} ${d(4)}`, `07700 ${d(6)}`, `+49 30 ${d(8)}`, `030 ${d(8)}`,
    `+33 1 ${d(2)} ${d(2)} ${d(2)} ${d(2)}`, `01 ${d(2)} ${d(2)} ${d(2)} ${d(2)}`, `+91-98${d(3)}-${d(5)}`,
    `+81 3-${d(4)}-${d(4)}`, `+61 2 ${d(4)} ${d(4)}`, `0049 30 ${d(8)}`
  ])
}
fill('phone', [
  (v) => `Call me at ${v} after 5pm`,
  (v) => `Tel: ${v}`,
  (v) => `{"contact":{"phone":"${v}"}}`,
  (v) => `Mobile ${v} (preferred)`,
  (v) => `Customer called from ${v}; ticket escalated.`
], PHONES)

// ---- card
function luhnComplete (body: string): string {
  let sum = 0
  for (let i = 0; i < body.length; i++) {
    let digit = Number(body[body.length - 1 - i])
    if (i % 2 === 0) digit = digit * 2 > 9 ? digit * 2 - 9 : digit * 2
    sum += digit
  }
  return body + String((10 - (sum % 10)) % 10)
}
const BRANDS: Array<[string, number]> = [
  ['4', 16], ['51', 16], ['55', 16], ['2221', 16], ['2720', 16], ['34', 15], ['37', 15],
  ['6011', 16], ['65', 16], ['3530', 16], ['36', 14], ['62', 16], ['4', 19]
]
function card (): string {
  const [prefix, length] = prng.pick(BRANDS)
  const number = luhnComplete(prefix + chars(DIGITS, length - prefix.length - 1))
  const separator = prng.pick(['', ' ', '-'])
  if (separator === '' || length === 14 || length === 19) return number
  if (length === 15) return [number.slice(0, 4), number.slice(4, 10), number.slice(10)].join(separator)
  return number.match(/.{4}/g)!.join(separator)
}
fill('card', [
  (v) => `Card number: ${v}`,
  (v) => `{"payment":{"pan":"${v}","exp":"12/27"}}`,
  (v) => `charged ${v} for EUR 49.90`,
  (v) => `cc=${v}&amount=1999`,
  (v) => `Please update card ${v} before renewal.`
], card)

// ---- iban
const IBAN_FORMATS: Array<[string, () => string]> = [
  ['DE', () => chars(DIGITS, 18)], ['GB', () => chars(UPPER, 4) + chars(DIGITS, 14)], ['FR', () => chars(DIGITS, 23)],
  ['NL', () => chars(UPPER, 4) + chars(DIGITS, 10)], ['ES', () => chars(DIGITS, 20)], ['IT', () => chars(UPPER, 1) + chars(DIGITS, 22)],
  ['BE', () => chars(DIGITS, 12)], ['CH', () => chars(DIGITS, 17)], ['NO', () => chars(DIGITS, 11)], ['PL', () => chars(DIGITS, 24)]
]
function ibanCheckDigits (country: string, bban: string): string {
  const numeric = (bban + country + '00').replace(/[A-Z]/g, (letter) => String(letter.charCodeAt(0) - 55))
  let remainder = 0
  for (const digit of numeric) remainder = (remainder * 10 + Number(digit)) % 97
  return String(98 - remainder).padStart(2, '0')
}
function iban (spaced: boolean, corrupt = false): string {
  const [country, bban] = prng.pick(IBAN_FORMATS)
  const body = bban()
  let check = ibanCheckDigits(country, body)
  if (corrupt) check = String((Number(check) + prng.intInclusive(1, 9)) % 100).padStart(2, '0')
  const compact = country + check + body
  return spaced ? compact.match(/.{1,4}/g)!.join(' ') : compact
}
fill('iban', [
  (v) => `IBAN: ${v}`,
  (v) => `Please wire the deposit to ${v} by Friday.`,
  (v) => `{"beneficiary":{"iban":"${v}","bic":"DEUTDEFF"}}`,
  (v) => `Kontoverbindung ${v} (Hausbank)`
], () => iban(prng.chance(1, 2)))

// ---- national-id (US SSN)
function ssn (): string {
  let area = prng.intInclusive(1, 899)
  if (area === 666) area = 667
  return `${String(area).padStart(3, '0')}-${String(prng.intInclusive(1, 99)).padStart(2, '0')}-${String(prng.intInclusive(1, 9999)).padStart(4, '0')}`
}
fill('national-id', [
  (v) => `SSN ${v} on file`,
  (v) => `{"applicant":{"ssn_last_verified":"2024-01-15","tax_id":"${v}"}}`,
  (v) => `Employee social security no. ${v}`,
  (v) => `W-2 recipient ${v}, wages 52,000`
], ssn)
for (let i = 0; i < 6; i++) positive('national-id', (v) => `SSN: ${v}`, ssn().replace(/-/g, ''))

// ---- ip-address
function ipv4 (): string {
  return [prng.intInclusive(1, 223), prng.intInclusive(0, 255), prng.intInclusive(0, 255), prng.intInclusive(1, 254)].join('.')
}
function ipv6 (): string {
  const groups = Array.from({ length: 8 }, () => chars(HEX, prng.intInclusive(1, 4)))
  return prng.pick([
    groups.join(':'), `2001:db8::${groups[0]}:${groups[1]}`, `fe80::${groups[2]}:${groups[3]}:${groups[4]}`,
    `::ffff:${ipv4()}`, `2001:db8:${groups[5]}::${groups[6]}`
  ])
}
fill('ip-address', [
  (v) => `client ${v} connected`,
  (v) => `Failed password for root from ${v} port 22 ssh2`,
  (v) => `{"remote_addr":"${v}","status":200}`,
  (v) => `X-Forwarded-For: ${v}`,
  (v) => `upstream http://${v}/healthz timed out`,
  (v) => `allowlist += ${v}`
], () => prng.chance(1, 3) ? ipv6() : ipv4())
positive('ip-address', (v) => `[${v}]:8443 refused`, '2001:db8::8a2e:370:7334')
positive('ip-address', (v) => `route ${v}/8 via gw`, '10.0.0.0')

// ---- jwt
function base64url (text: string): string {
  return Buffer.from(text).toString('base64url')
}
function jwt (): string {
  const header = base64url(JSON.stringify({ alg: prng.pick(['HS256', 'RS256', 'ES256']), typ: 'JWT' }))
  const payload = base64url(JSON.stringify({ sub: chars(DIGITS, 10), name: prng.pick(FIRST), iat: 1700000000 + prng.intInclusive(0, 1e6) }))
  return `${header}.${payload}.${chars(BASE64URL, 43)}`
}
fill('jwt', [
  (v) => `Authorization: Bearer ${v}`,
  (v) => `{"id_token":"${v}"}`,
  (v) => `callback#access=${v}&state=xyz`,
  (v) => `session cookie ${v} expired`
], jwt)

// ---- cloud-key
fill('cloud-key', [
  (v) => `aws_access_key_id = ${v}`,
  (v) => `found ${v} in build log`,
  (v) => `export AWS_ACCESS_KEY_ID=${v}`
], () => prng.pick(['AKIA', 'ASIA']) + chars(UPPER + DIGITS, 16))
for (let i = 0; i < 10; i++) {
  positive('cloud-key', prng.pick([(v: string) => `aws_secret_access_key = ${v}`, (v: string) => `AWS_SECRET_ACCESS_KEY="${v}"`,
    (v: string) => `{"aws_secret_access_key": "${v}"}`]), chars(BASE64, 39) + 'A')
  positive('cloud-key', prng.pick([(v: string) => `maps key=${v}`, (v: string) => `{"maps_key":"${v}"}`]),
    'AIza' + chars(BASE64URL, 35))
  positive('cloud-key', (v) => `DefaultEndpointsProtocol=https;AccountName=acct${i};AccountKey=${v};EndpointSuffix=core.windows.net`,
    chars(BASE64, 86) + '==')
  positive('cloud-key', (v) => `https://acct${i}.blob.core.windows.net/c/x.csv?sv=2022-11-02&se=2025-01-01&sp=r&sig=${v}`,
    chars(BASE62, 30) + '%2B' + chars(BASE62, 8) + '%3D')
}
for (let i = 0; i < 5; i++) {
  positive('cloud-key', (v) => `{"type": "service_account", "project_id": "demo", "private_key_id": "${v}"}`, chars(HEX, 40))
}

// ---- private-key
function pem (label: string): string {
  const body = Array.from({ length: prng.intInclusive(2, 5) }, () => chars(BASE64, 64)).join('\n')
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----`
}
for (let i = 0; i < 20; i++) {
  const key = pem(prng.pick(['RSA PRIVATE KEY', 'PRIVATE KEY', 'EC PRIVATE KEY', 'OPENSSH PRIVATE KEY', 'ENCRYPTED PRIVATE KEY']))
  const escaped = key.replace(/\n/g, '\\n')
  if (i % 3 === 0) positive('private-key', (v) => `key file:\n${v}\n`, key)
  else if (i % 3 === 1) positive('private-key', (v) => `{"type": "service_account", "private_key": "${v}"}`, escaped)
  else positive('private-key', (v) => v, key)
}
for (let i = 0; i < 20; i++) {
  const hex = chars(HEX, 64)
  const b64 = Buffer.from(hex, 'hex').toString('base64')
  positive('private-key', prng.pick([(v: string) => `seed: ${v}`, (v: string) => `node.private_key = "${v}"`,
    (v: string) => `{"ed25519_seed":"${v}"}`, (v: string) => `SIGNING_KEY=${v}`]), prng.chance(1, 2) ? hex : b64)
}

// ---- bearer-token
fill('bearer-token', [
  (v) => `Authorization: Bearer ${v}`,
  (v) => `curl -H "Authorization: Bearer ${v}" https://api.example.com/v1/me`,
  (v) => `authorization=Basic ${v}`,
  (v) => `sent header bearer ${v}`
], () => prng.pick([
  () => 'ya29.' + chars(BASE64URL, 40),
  () => chars(HEX, 32),
  () => Buffer.from(`${prng.pick(FIRST)}:${chars(LOWER, 8)}`).toString('base64'),
  () => 'tok_' + chars(LOWER + DIGITS, 12)
])())

// ---- url-password
fill('url-password', [
  (v) => `DATABASE_URL=postgres://app:${v}@db.internal:5432/orders`,
  (v) => `connecting to amqp://guest:${v}@rabbit:5672/`,
  (v) => `{"redis":"redis://:${v}@cache.internal:6379/0"}`,
  (v) => `git clone https://deploy:${v}@git.example.com/team/repo.git`,
  (v) => `mongodb+srv://svc:${v}@cluster0.example.net/db?retryWrites=true`
], () => prng.pick([() => chars(LOWER, 8), () => mixed(12), () => `${prng.pick(FIRST)}${prng.intInclusive(1, 999)}!`.replace('.', '')])())

// ---- secret (generic high entropy)
fill('secret', [
  (v) => `token ${v}`,
  (v) => `{"webhook":{"value":"${v}"}}`,
  (v) => `GITHUB=${v}`,
  (v) => `stripe ${v} rotated`,
  (v) => `X-Api-Value: ${v}`
], () => prng.pick([
  () => 'ghp_' + mixed(36), () => 'sk_live_' + mixed(24), () => mixed(32), () => mixed(40),
  () => 'xoxb-' + chars(DIGITS, 11) + '-' + mixed(24)
])())

// ---- sensitive field names: {json, expected: [{category, path}]}, paths joined with '.'
interface FieldLine { json: unknown, expected: Array<{ category: string, path: string }> }
const fieldLines: FieldLine[] = []
const SENSITIVE_KEYS = ['password', 'Password', 'passwd', 'db_password', 'userPassword', 'secret', 'client_secret',
  'token', 'access_token', 'refreshToken', 'X-Auth-Token', 'api_key', 'apiKey', 'API-KEY', 'x-api-key', 'ssn',
  'SSN', 'private_key', 'privateKey', 'credentials', 'Authorization', 'authorization', 'cookie', 'Set-Cookie',
  'session_id', 'passphrase', 'pin', 'cvv', 'secret_key', 'AccessKey', 'connection_string', 'mnemonic']
const BENIGN_KEYS = ['max_tokens', 'token_count', 'tokens', 'secretary', 'passenger', 'keyboard', 'spin', 'seedling',
  'author', 'authored_by', 'password_policy', 'pinned', 'cookie_consent', 'public_key', 'key_id', 'sessions', 'name']
for (let i = 0; i < POSITIVES_PER_CATEGORY; i++) {
  const key = SENSITIVE_KEYS[i % SENSITIVE_KEYS.length]!
  const benign = BENIGN_KEYS[i % BENIGN_KEYS.length]!
  const value = prng.pick([chars(LOWER, 8), 'hunter2', String(prng.intInclusive(1000, 9999)), { nested: chars(LOWER, 6) }, [chars(LOWER, 4)]])
  const benignValue = prng.pick([prng.intInclusive(1, 4096), chars(LOWER, 6), true, 'Jane Doe'])
  const depth = i % 4
  let json: Record<string, unknown> = { [key]: value, [benign]: benignValue, id: i }
  let path = key
  for (let level = 0; level < depth; level++) {
    json = { [`level${level}`]: level % 2 === 0 ? json : [json] }
    path = level % 2 === 0 ? `level${level}.${path}` : `level${level}.0.${path}`
  }
  fieldLines.push({ json, expected: [{ category: 'sensitive-field', path }] })
}
for (const key of BENIGN_KEYS) fieldLines.push({ json: { [key]: prng.pick([chars(LOWER, 6), 42, false]) }, expected: [] })
for (const key of ['password', 'token', 'secret']) fieldLines.push({ json: { [key]: null, other: '' }, expected: [] })

// ---- look-alikes that must stay untouched
const negatives: string[] = [
  'Order ORD-2024-000123 shipped', 'Invoice INV-555-123-4567 paid', 'PO 2024-555-0134 approved', 'Ticket #4111111111111111',
  'created 2024-01-15T10:30:00Z', 'updated 2024-01-15 10:30:00.123+02:00', 'ts=1700000000', 'ts_ms=1700000000123',
  'date 15.01.2024', 'due 01/15/2024', 'on 2024/01/15 at 12:00', 'elapsed 10:30:45', 'at 23:59:59.999',
  'v1.2.3.4', 'version 1.2.3.4', 'build 10.0.19041.1', 'release 2.4.1.0 notes', 'Chrome/120.0.6099.109 Safari/537.36',
  'lib-1.2.3.4-beta', '1.2.3', '2.0.0-beta.1', 'OID 1.3.6.1.4.1.311', 'semver ^1.2.3 || ~2.3.4',
  'price $1,234.56', 'EUR 1 234,56', 'total 1234.56', 'qty 10 20 30 40 50', 'coords 48.8566, 2.3522', 'at 37.7749,-122.4194',
  'ISBN 978-3-16-148410-0', 'EAN 4006381333931', 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==', 'UPS 1Z999AA10123456784', 'call 4155552671 bare digits are ids', 'room 101, building 7',
  'tel ext 1234', 'sku SKU-ABC-12345-XL', 'batch 20240115103000', 'serial 12345678901234', 'phone 555-1234 local only',
  'logo@2x.png', 'icon@3x.jpg', '@username mentioned you', 'mail to user@localhost', 'npm i left-pad@1.3.0',
  'https://example.com/path?query=1&page=2', 'http://localhost:8080/api', 'https://example.com:8443/a/b',
  '::1 is loopback', 'std::vector<int>', 'a::b::c', 'mac 00:1A:2B:3C:4D:5E', 'color #ff00aa', 'ratio 16:9',
  'ssn 000-12-3456', 'id 666-12-3456', 'ref 900-12-3456', 'case 123-00-4567', 'file 123-45-0000',
  'bearer bonds are risky', 'the bearer of this letter', 'Authorization: none', 'seed: 42', 'random_seed=12345',
  'private_key_path=/etc/fedmesh/node.key', 'private key rotation is scheduled', 'AKIA is a prefix', 'AKIAIOSFODNN7EXAMP',
  'AIzaShort', 'AccountKey=short', 'sig=abc', 'eyJhbGciOiJIUzI1NiJ9 alone', 'a.b.c', 'eyJ.eyJ.x',
  '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----',
  '-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----',
  'getUserAccountSettingsById', 'internationalization', 'ProductCategoryElectronics2024', 'CamelCaseIdentifierForOrders2',
  '/usr/local/lib/node_modules/typescript/lib/tsc.js', 'C:\\Users\\Public\\Documents\\Report2024.docx',
  'https://cdn.example.com/assets/Images/HeroBanner2024-large.webp', 'utm_campaign=SummerSale2024',
  'sha256:' + 'ab'.repeat(32), 'integrity sha512-' + 'Qm9vYmFy'.repeat(8), 'etag: W/"5e8f1c2a9b"',
  'checksum=' + 'A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6', 'docker pull nginx@sha256:' + 'c0ffee'.repeat(10) + 'abcd',
  'MyPassword field is required', 'password must be 12+ characters', 'reset your password at https://example.com/reset',
  'postgres://db.internal:5432/orders', 'ssh://git.example.com:2222/repo', 'redis://cache:6379/0',
  'error E11000 duplicate key', 'HTTP/1.1 200 OK', 'PID 12345 exited with 137', 'port 65535', '0.0.0.0.0',
  '999.999.999.999', '256.1.1.1', '01.02.03.04', '10.0.0', '1.2.3.4.5.6', 'x 3.14159265358979'
]
const NEGATIVE_GENERATORS: Array<() => string> = [
  () => `uuid ${[8, 4, 4, 4, 12].map((n) => chars(HEX, n)).join('-')}`,
  () => `commit ${chars(HEX, 40)}`,
  () => `short sha ${chars(HEX, 7)} merged`,
  () => `digest ${chars(HEX, 64)}`,
  () => `card ${luhnFailing()}`,
  () => `IBAN ${iban(prng.chance(1, 2), true)}`,
  () => `created ${new Date(1.6e12 + prng.intInclusive(0, 1e11)).toISOString()}`,
  () => `epoch ${1_600_000_000 + prng.intInclusive(0, 1e8)} ms ${1_600_000_000_000 + prng.intInclusive(0, 1e11)}`,
  () => `order #${chars(DIGITS, 10)} total $${prng.intInclusive(1, 9999)}.${chars(DIGITS, 2)}`,
  () => `trace_id=${chars(HEX, 32)} span_id=${chars(HEX, 16)}`
]
function luhnFailing (): string {
  const valid = card().replace(/\D/g, '')
  return valid.slice(0, -1) + String((Number(valid.slice(-1)) + prng.intInclusive(1, 9)) % 10)
}
for (const text of negatives) lines.push({ text, expected: [] })
for (let i = 0; i < 8; i++) for (const generate of NEGATIVE_GENERATORS) lines.push({ text: generate(), expected: [] })

// ---- lines with several findings, and findings among look-alikes
for (let i = 0; i < 10; i++) {
  const email = `${prng.pick(FIRST)}@${prng.pick(DOMAINS)}`
  const phone = PHONES()
  const ip = ipv4()
  lines.push({
    text: `2024-01-15T10:30:00Z order ORD-${chars(DIGITS, 6)} by ${email} (${phone}) from ${ip} v2.3.1 total $${prng.intInclusive(1, 999)}.99`,
    expected: [{ category: 'email', match: email }, { category: 'phone', match: phone }, { category: 'ip-address', match: ip }]
  })
}

// ---- the mesh's own identifiers: peer ids, multiaddrs, public keys, task references (look-alikes)
const BASE58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'
function base58 (bytes: number[]): string {
  let value = bytes.reduce((n, byte) => n * 256n + BigInt(byte), 0n)
  let out = ''
  while (value > 0n) {
    out = BASE58[Number(value % 58n)] + out
    value /= 58n
  }
  for (const byte of bytes) if (byte === 0) out = '1' + out; else break
  return out
}
/** A libp2p ed25519 peer id: base58btc of the identity multihash of the protobuf public key. */
function peerId (): string {
  return base58([0x00, 0x24, 0x08, 0x01, 0x12, 0x20, ...Array.from({ length: 32 }, () => prng.nextU32() % 256)])
}
const taskRef = (): string => `${prng.intInclusive(0, 9)}.${prng.intInclusive(1, 99_999)}.${prng.intInclusive(0, 63)}`
const MESH_IDENTIFIERS: Array<() => string> = [
  () => `peer ${peerId()} is slow`,
  () => `{"peer":"${peerId()}","state":"suspect"}`,
  () => `fedmesh start --bootstrap /ip4/${ipv4()}/tcp/7400/p2p/${peerId()}`,
  () => `dial /ip6/${ipv6()}/tcp/${prng.intInclusive(1024, 65535)}/p2p/${peerId()}`,
  () => `relay /ip4/${ipv4()}/tcp/4001/p2p/${peerId()}/p2p-circuit/p2p/${peerId()}`,
  () => `listening on /ip4/${ipv4()}/tcp/${prng.intInclusive(1024, 65535)}`,
  () => `org root ${chars(HEX, 64)} of globex`,
  () => `{"key":"${chars(HEX, 64)}","org":"initech"}`,
  () => `public_key=${chars(HEX, 64)}`,
  () => `claim task ${taskRef()} for umbrella, then ${taskRef()}`,
  () => `client ${chars(HEX, 64)}.${chars(HEX, 64)}.${prng.intInclusive(1, 999)}`
]
for (let i = 0; i < 4; i++) for (const generate of MESH_IDENTIFIERS) lines.push({ text: generate(), expected: [] })
for (let i = 0; i < 6; i++) {
  const secret = mixed(32)
  const ip = ipv4()
  lines.push({
    text: `node ${peerId()} at /ip4/${ipv4()}/tcp/7400/p2p/${peerId()} leaked token=${secret} from ${ip} (task ${taskRef()})`,
    expected: [{ category: 'secret', match: secret }, { category: 'ip-address', match: ip }]
  })
}

const path = join(dirArgument ?? dirname(fileURLToPath(import.meta.url)), 'corpus.jsonl')
writeFileSync(path, lines.map((line) => JSON.stringify(line)).join('\n') + '\n')
const fieldsPath = join(dirname(path), 'fields.jsonl')
writeFileSync(fieldsPath, fieldLines.map((line) => JSON.stringify(line)).join('\n') + '\n')
console.log(`wrote ${lines.length} lines to ${path}, ${fieldLines.length} to ${fieldsPath}`)

// What the sanitizer looks for, and what it may do with each finding.

/** Detector categories, in priority order: when two findings overlap, the earlier category wins. */
export const CATEGORIES = [
  'private-key',
  'jwt',
  'cloud-key',
  'bearer-token',
  'url-password',
  'email',
  'iban',
  'card',
  'national-id',
  'phone',
  'ip-address',
  'secret',
  'sensitive-field'
] as const

export type Category = typeof CATEGORIES[number]

/**
 * mask: `[REDACTED:<category>]`; hash: keyed pseudonym `[<category>:<10 hex>]`; drop: remove the matched
 * text (or the whole field); block: refuse the whole send; keep: leave it (still wins overlaps).
 */
export const MODES = ['mask', 'hash', 'drop', 'block', 'keep'] as const

export type Mode = typeof MODES[number]

export type ModeTable = Readonly<Record<Category, Mode>>

/** Cross-organisation defaults: mask everything, refuse to send private keys at all. */
export const CROSS_ORG_MODES: ModeTable = Object.freeze({
  'private-key': 'block',
  jwt: 'mask',
  'cloud-key': 'mask',
  'bearer-token': 'mask',
  'url-password': 'mask',
  email: 'mask',
  iban: 'mask',
  card: 'mask',
  'national-id': 'mask',
  phone: 'mask',
  'ip-address': 'mask',
  secret: 'mask',
  'sensitive-field': 'mask'
})

const CATEGORY_RANK = new Map<string, number>(CATEGORIES.map((category, rank) => [category, rank]))

export function isCategory (name: string): name is Category {
  return CATEGORY_RANK.has(name)
}

export function isMode (name: string): name is Mode {
  return (MODES as readonly string[]).includes(name)
}

/** Lower rank = higher priority. */
export function categoryRank (category: Category): number {
  const rank = CATEGORY_RANK.get(category)
  if (rank === undefined) throw new Error(`unknown category ${category}`)
  return rank
}

// Check digits that turn "looks like a number" into "is one": Luhn for cards, ISO 7064 mod 97 for IBANs.

/** Luhn check over a string of ASCII digits. */
export function luhnValid (digits: string): boolean {
  let sum = 0
  let double = false
  for (let index = digits.length - 1; index >= 0; index--) {
    let digit = digits.charCodeAt(index) - 48
    if (digit < 0 || digit > 9) return false
    if (double) {
      digit *= 2
      if (digit > 9) digit -= 9
    }
    sum += digit
    double = !double
  }
  return sum % 10 === 0
}

/** IBAN length by country (SWIFT IBAN registry). Unknown countries are not IBANs to us. */
export const IBAN_LENGTHS: ReadonlyMap<string, number> = new Map(Object.entries({
  AD: 24, AE: 23, AL: 28, AT: 20, AZ: 28, BA: 20, BE: 16, BG: 22, BH: 22, BR: 29, BY: 28, CH: 21,
  CR: 22, CY: 28, CZ: 24, DE: 22, DK: 18, DO: 28, EE: 20, EG: 29, ES: 24, FI: 18, FO: 18, FR: 27,
  GB: 22, GE: 22, GI: 23, GL: 18, GR: 27, GT: 28, HR: 21, HU: 28, IE: 22, IL: 23, IQ: 23, IS: 26,
  IT: 27, JO: 30, KW: 30, KZ: 20, LB: 28, LC: 32, LI: 21, LT: 20, LU: 20, LV: 21, MC: 27, MD: 24,
  ME: 22, MK: 19, MR: 27, MT: 31, MU: 30, NL: 18, NO: 15, PK: 24, PL: 28, PS: 29, PT: 25, QA: 29,
  RO: 24, RS: 22, SA: 24, SC: 31, SE: 24, SI: 19, SK: 24, SM: 27, ST: 25, SV: 28, TL: 23, TN: 24,
  TR: 26, UA: 29, VA: 22, VG: 24, XK: 20
}))

/**
 * ISO 13616 check of a compact upper-case IBAN: move 4 chars to the end, letters → 10..35, mod 97 = 1.
 * Check digits are 02..98 (00, 01 and 99 alias 97, 98 and 02 under mod 97 and are never issued).
 */
export function ibanValid (compact: string): boolean {
  if (IBAN_LENGTHS.get(compact.slice(0, 2)) !== compact.length) return false
  const checkDigits = Number(compact.slice(2, 4))
  if (!(checkDigits >= 2 && checkDigits <= 98)) return false
  const rotated = compact.slice(4) + compact.slice(0, 4)
  let remainder = 0
  for (let index = 0; index < rotated.length; index++) {
    const code = rotated.charCodeAt(index)
    if (code >= 48 && code <= 57) {
      remainder = (remainder * 10 + code - 48) % 97
    } else if (code >= 65 && code <= 90) {
      remainder = (remainder * 100 + code - 55) % 97
    } else {
      return false
    }
  }
  return remainder === 1
}

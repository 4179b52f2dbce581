// Character classes on UTF-16 code units, for the scanners' hot loops (no regex, no allocation).

export function isDigit (code: number): boolean {
  return code >= 48 && code <= 57
}

export function isUpper (code: number): boolean {
  return code >= 65 && code <= 90
}

export function isLower (code: number): boolean {
  return code >= 97 && code <= 122
}

export function isAlnum (code: number): boolean {
  return isDigit(code) || isUpper(code) || isLower(code)
}

/** [A-Za-z0-9_] */
export function isWordChar (code: number): boolean {
  return isAlnum(code) || code === 95
}

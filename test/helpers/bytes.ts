/** Deterministic pseudo-random bytes (xorshift32) for garbage-input tests. */
export function seededBytes (seed: number, length: number): Uint8Array {
  let x = (seed * 2654435761) >>> 0 || 1
  const out = new Uint8Array(length)
  for (let i = 0; i < length; i++) {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    out[i] = x & 0xff
  }
  return out
}

// Field readers shared by the Raft and PBFT message decoders: each checks one shape of untrusted
// CBOR and reports a mismatch through the protocol's own typed error.
export interface WireReaders {
  array(x: unknown, length: number | undefined, what: string): unknown[]
  uint(x: unknown, what: string): number
}

export function wireReaders (fail: (why: string) => never): WireReaders {
  return {
    array (x, length, what) {
      if (!Array.isArray(x)) fail(`${what} is not an array`)
      if (length !== undefined && x.length !== length) fail(`${what} has ${x.length} fields, expected ${length}`)
      return x
    },
    uint (x, what) {
      if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) fail(`${what} is not a non-negative integer`)
      return x
    }
  }
}

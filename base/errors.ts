// Typed errors: every rejection of untrusted input carries a stable machine-readable code, which is
// also the label of the counter that counts it.

export class FedmeshError extends Error {
  constructor (readonly code: string, message: string) {
    super(message)
    this.name = 'FedmeshError'
  }
}

export class IdentityError extends FedmeshError {
  constructor (code: 'key-file-permissions' | 'key-file-malformed', message: string) {
    super(code, message)
    this.name = 'IdentityError'
  }
}

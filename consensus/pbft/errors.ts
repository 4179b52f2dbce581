import { FedmeshError } from '../../base/errors.js'

// Rejections of untrusted PBFT bytes with stable codes (the shell counts them by code).
export class PbftDecodeError extends FedmeshError {
  constructor (code: 'pbft-message-malformed' | 'pbft-message-too-large', message: string) {
    super(code, message)
    this.name = 'PbftDecodeError'
  }
}

/** A client request the replica refuses outright (it could never be ordered). */
export class PbftRequestError extends FedmeshError {
  constructor (code: 'pbft-request-too-large' | 'pbft-request-malformed', message: string) {
    super(code, message)
    this.name = 'PbftRequestError'
  }
}

import { FedmeshError } from '../../node/errors.js'

// Rejections of untrusted PBFT bytes with stable codes (the shell counts them by code).
export class PbftDecodeError extends FedmeshError {
  constructor (code: 'pbft-message-malformed' | 'pbft-message-too-large', message: string) {
    super(code, message)
    this.name = 'PbftDecodeError'
  }
}

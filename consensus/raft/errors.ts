import { FedmeshError } from '../../base/errors.js'

// Rejections of untrusted bytes (wire messages, stored records) with stable codes.
export class RaftDecodeError extends FedmeshError {
  constructor (code: 'raft-message-malformed' | 'raft-message-too-large' | 'raft-record-malformed', message: string) {
    super(code, message)
    this.name = 'RaftDecodeError'
  }
}

import { FedmeshError } from '../../base/errors.js'

export class FederationError extends FedmeshError {}

// Field names and labels compare case-, underscore-, dash-, dot- and space-insensitively:
// "API-Key", "api_key" and "apiKey" are one name.

const NAME_NOISE = /[\s_.-]+/g

export function normalizeName (name: string): string {
  return name.toLowerCase().replace(NAME_NOISE, '')
}

/** Whose value is a credential or identifier however it looks; compared after normalizeName. */
export const SENSITIVE_NAMES: readonly string[] = [
  'password', 'passwd', 'pwd', 'passphrase', 'secret', 'token', 'apikey', 'ssn', 'privatekey',
  'privatekeyid', 'credential', 'credentials', 'authorization', 'cookie', 'setcookie', 'sessionid',
  'pin', 'cvv', 'cvc', 'socialsecuritynumber', 'secretkey', 'accesskey', 'signingkey', 'seed',
  'mnemonic', 'clientsecret', 'connectionstring'
]

/**
 * Names ending like these are sensitive too ("db_password", "github_token", "x-api-key"). Short or
 * common words (pin, seed, cookie, ssn) match exactly only, so "spin" and "seedling" stay.
 */
export const SENSITIVE_SUFFIXES: readonly string[] = [
  'password', 'passwd', 'passphrase', 'secret', 'token', 'apikey', 'privatekey', 'credentials',
  'credential', 'authorization', 'secretkey', 'accesskey', 'signingkey', 'sessionid', 'connectionstring'
]

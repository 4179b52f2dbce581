import { pino, type Logger } from 'pino'

export type { Logger }

// Structured JSON-lines logs with a level (pino). The node's logger writes to stderr
// (node/runtime/log.ts); tests and the simulator pass silentLogger or their own.
export const silentLogger: Logger = pino({ level: 'silent' })

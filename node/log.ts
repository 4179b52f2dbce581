import { pino, type Logger } from 'pino'

export type { Logger }

// Structured JSON-lines logs with a level. FEDMESH_LOG_LEVEL sets the level (default info);
// logs go to stderr so that command output on stdout stays machine-readable.
export function createLogger (name: string, level = process.env.FEDMESH_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name, level, base: { name } }, pino.destination({ fd: 2, sync: true }))
}

export const silentLogger: Logger = pino({ level: 'silent' })

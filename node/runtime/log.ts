import { pino } from 'pino'
import type { Logger } from '../../base/log.js'

// FEDMESH_LOG_LEVEL sets the level (default info); logs go to stderr so that command output on
// stdout stays machine-readable.
export function createLogger (name: string, level = process.env.FEDMESH_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name, level, base: { name } }, pino.destination({ fd: 2, sync: true }))
}

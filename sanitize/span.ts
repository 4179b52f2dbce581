import type { Category } from './categories.js'

/** A finding in a string: [start, end) code-unit offsets and what it is. Never leaves the sanitizer. */
export interface Span {
  start: number
  end: number
  category: Category
}

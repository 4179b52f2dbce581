// DOM helpers for the console page. Everything the node sends is data from the network (org
// names, capabilities, audit details…): it goes into the page as text nodes only, never as HTML.

type Child = Node | string | number | null | undefined | false
type Attributes = Record<string, string | undefined>

/** An element with attributes (class, id, title, data-*…) and children (strings become text). */
export function h (tag: string, attributes: Attributes = {}, ...children: Child[]): HTMLElement {
  const element = document.createElement(tag)
  for (const [name, value] of Object.entries(attributes)) if (value !== undefined) element.setAttribute(name, value)
  append(element, children)
  return element
}

export function append (parent: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue
    parent.appendChild(typeof child === 'object' ? child : document.createTextNode(String(child)))
  }
}

/** Replaces the children of the element with this id (the page's sections are re-rendered whole on each poll). */
export function fill (id: string, ...children: Child[]): void {
  const element = byId(id)
  element.replaceChildren()
  append(element, children)
}

export function byId (id: string): HTMLElement {
  const element = document.getElementById(id)
  if (element === null) throw new Error(`no element #${id}`)
  return element
}

export function table (headings: string[], rows: Child[][], attributes: Attributes = {}): HTMLElement {
  return h('table', attributes,
    h('thead', {}, h('tr', {}, ...headings.map((t) => h('th', {}, t)))),
    h('tbody', {}, ...rows.map((cells) => h('tr', {}, ...cells.map((c) => h('td', {}, c))))))
}

/** A key shortened for display, whole in its tooltip. */
export function shortKey (key: string): HTMLElement {
  return h('span', { class: 'key', title: key }, key.length > 12 ? `${key.slice(0, 8)}…${key.slice(-4)}` : key)
}

export function badge (text: string, kind: string): HTMLElement {
  return h('span', { class: `badge ${kind}` }, text)
}

export function ago (ms: number): string {
  if (ms < 1000) return 'now'
  if (ms < 60_000) return `${Math.round(ms / 1000)} s ago`
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min ago`
  return `${Math.round(ms / 3_600_000)} h ago`
}

export function clockTime (ms: number): string {
  return new Date(ms).toLocaleTimeString()
}

import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { WebSocket } from 'undici'

// Headless Chromium (Debian's `chromium` package) driven over the Chrome DevTools Protocol: one
// page, its JavaScript evaluated in it, screenshots. Only what the console test needs.

export const CHROMIUM = '/usr/bin/chromium'

export class HeadlessChromium {
  #nextId = 0
  readonly #pending = new Map<number, { resolve: (value: unknown) => void, reject: (err: Error) => void }>()

  private constructor (readonly child: ChildProcess, readonly profile: string, readonly socket: WebSocket) {
    socket.addEventListener('message', (event) => {
      const message = JSON.parse(String(event.data)) as { id?: number, result?: unknown, error?: { message: string } }
      const call = message.id === undefined ? undefined : this.#pending.get(message.id)
      if (call === undefined) return
      this.#pending.delete(message.id!)
      if (message.error !== undefined) call.reject(new Error(message.error.message))
      else call.resolve(message.result)
    })
  }

  /** Starts Chromium on a blank page of the given viewport and connects to that page. */
  static async launch (viewport: { width: number, height: number }): Promise<HeadlessChromium> {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run installs it)`)
    const profile = await mkdtemp(join(tmpdir(), 'fedmesh-chromium-'))
    const child = spawn(CHROMIUM, [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--disable-extensions', '--hide-scrollbars',
      '--remote-debugging-address=127.0.0.1', '--remote-debugging-port=0', `--user-data-dir=${profile}`,
      `--window-size=${viewport.width},${viewport.height}`, 'about:blank'
    ], { stdio: ['ignore', 'ignore', 'pipe'] })
    try {
      const browserUrl = await new Promise<string>((resolve, reject) => {
        let stderr = ''
        const timer = setTimeout(() => reject(new Error(`chromium did not start: ${stderr}`)), 20_000)
        child.stderr!.on('data', (chunk: Buffer) => {
          stderr += chunk.toString()
          const match = /DevTools listening on (ws:\/\/\S+)/.exec(stderr)
          if (match !== null) { clearTimeout(timer); resolve(match[1]!) }
        })
        child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`chromium exited with ${code}: ${stderr}`)) })
      })
      const targets = await (await fetch(`http://${new URL(browserUrl).host}/json/list`)).json() as Array<{ type: string, webSocketDebuggerUrl: string }>
      const page = targets.find((t) => t.type === 'page')
      if (page === undefined) throw new Error('chromium opened no page')
      const socket = new WebSocket(page.webSocketDebuggerUrl)
      await new Promise((resolve, reject) => {
        socket.addEventListener('open', resolve)
        socket.addEventListener('error', () => reject(new Error('cannot connect to the page over CDP')))
      })
      const browser = new HeadlessChromium(child, profile, socket)
      await browser.send('Emulation.setDeviceMetricsOverride', { ...viewport, deviceScaleFactor: 1, mobile: false })
      return browser
    } catch (err) {
      child.kill('SIGKILL')
      await rm(profile, { recursive: true, force: true })
      throw err
    }
  }

  async send<T = unknown> (method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = ++this.#nextId
    const answer = new Promise<unknown>((resolve, reject) => this.#pending.set(id, { resolve, reject }))
    this.socket.send(JSON.stringify({ id, method, params }))
    return await answer as T
  }

  async navigate (url: string): Promise<void> {
    await this.send('Page.navigate', { url })
  }

  /** The value of a JavaScript expression in the page (awaited if it is a promise); throws what it throws. */
  async evaluate<T> (expression: string): Promise<T> {
    const { result, exceptionDetails } = await this.send<{ result: { value?: unknown }, exceptionDetails?: { text: string, exception?: { description?: string } } }>(
      'Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true })
    if (exceptionDetails !== undefined) throw new Error(exceptionDetails.exception?.description ?? exceptionDetails.text)
    return result.value as T
  }

  /** A PNG of the whole page, beyond the viewport. */
  async screenshot (): Promise<Buffer> {
    const { cssContentSize } = await this.send<{ cssContentSize: { width: number, height: number } }>('Page.getLayoutMetrics')
    const { data } = await this.send<{ data: string }>('Page.captureScreenshot', {
      format: 'png', captureBeyondViewport: true, clip: { x: 0, y: 0, width: cssContentSize.width, height: cssContentSize.height, scale: 1 }
    })
    return Buffer.from(data, 'base64')
  }

  async close (): Promise<void> {
    this.socket.close()
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve))
      this.child.kill('SIGKILL')
      await exited
    }
    await rm(this.profile, { recursive: true, force: true })
  }
}

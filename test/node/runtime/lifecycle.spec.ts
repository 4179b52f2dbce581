import '../../../node/runtime/polyfills.js'
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { silentLogger } from '../../../base/log.js'
import { FedmeshNode } from '../../../node/node.js'
import { DB_DIR } from '../../../node/runtime/data-dir.js'
import { LevelStorage } from '../../../node/runtime/level-storage.js'
import { Lifecycle } from '../../../node/runtime/lifecycle.js'

describe('lifecycle', () => {
  it('stops what started, in reverse; a failed start adds nothing to stop', async () => {
    const events: string[] = []
    const lifecycle = new Lifecycle(silentLogger)
    const component = async (name: string, fail = false): Promise<string> => await lifecycle.start(name, () => {
      if (fail) throw new Error(`${name} failed`)
      events.push(`start ${name}`)
      return name
    }, (started) => { events.push(`stop ${started}`) })
    await component('a')
    await component('b')
    await assert.rejects(component('c', true), /c failed/)
    await lifecycle.stop()
    await lifecycle.stop()
    assert.deepEqual(events, ['start a', 'start b', 'stop b', 'stop a'])
  })

  it('stops every component even when one fails to stop, then throws the first failure', async () => {
    const stopped: string[] = []
    const lifecycle = new Lifecycle(silentLogger)
    for (const name of ['a', 'b', 'c']) {
      await lifecycle.start(name, () => undefined, () => {
        stopped.push(name)
        if (name !== 'a') throw new Error(`${name} stuck`)
      })
    }
    await assert.rejects(lifecycle.stop(), /c stuck/)
    assert.deepEqual(stopped, ['c', 'b', 'a'])
  })

  it('a node whose start fails at its API port stops everything it started: its database opens again', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'fedmesh-lifecycle-'))
    const taken = createServer()
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
    const port = (taken.address() as { port: number }).port
    try {
      await assert.rejects(FedmeshNode.start({ dataDir, listen: ['/ip4/127.0.0.1/tcp/0'], api: { host: '127.0.0.1', port }, logger: silentLogger }), /the address is in use/)
      const storage = await LevelStorage.open(join(dataDir, DB_DIR))
      await storage.close()
    } finally {
      taken.close()
      await rm(dataDir, { recursive: true, force: true })
    }
  })
})

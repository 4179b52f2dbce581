import assert from 'node:assert/strict'
import { silentLogger } from '../../../base/log.js'
import { startApi, type ApiServer } from '../../../node/api/server.js'
import { federationRoutes } from '../../../node/api/federation-routes.js'
import { FederationError } from '../../../node/federation/errors.js'
import type { Federation } from '../../../node/federation/federation.js'

// What a client of the federation API is told when the node cannot take its task now: 429 when too
// many are in flight here, 503 when the federation did not answer in time — both with Retry-After,
// so that clients back off alike instead of multiplying the load.

describe('federation API under overload', () => {
  let api: ApiServer | undefined
  after(async () => { await api?.close() })

  it('answers 429 with Retry-After when the node has too many proposals in flight, 503 with it on a timeout', async () => {
    let failure = new FederationError('federation-busy', '1024 federation requests in flight')
    const federation = { propose: async () => { throw failure } } as unknown as Federation
    const token = 'a'.repeat(64)
    api = await startApi({ host: '127.0.0.1', port: 0, token, logger: silentLogger, routes: federationRoutes(() => federation, 'f'.repeat(64)) })
    const post = async (): Promise<Response> => await fetch(`${api!.url}/v1/federation/tasks`, {
      method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ title: 't', capability: 'ops' })
    })
    const busy = await post()
    assert.equal(busy.status, 429)
    assert.equal(busy.headers.get('retry-after'), '1')
    assert.equal(((await busy.json()) as { code: string }).code, 'federation-busy')
    failure = new FederationError('federation-timeout', 'no f+1 matching replies in time')
    const late = await post()
    assert.equal(late.status, 503)
    assert.equal(late.headers.get('retry-after'), '1')
  })
})

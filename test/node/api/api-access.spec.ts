import assert from 'node:assert/strict'
import { silentLogger } from '../../../base/log.js'
import { isLoopback, startApi, type ApiInit, type ApiServer } from '../../../node/api/server.js'
import { HEALTH_ACCESS, healthRoutes, readiness } from '../../../node/api/health-routes.js'
import type { RaftNodeStatus } from '../../../consensus/raft/driver.js'
import type { FederationStatus } from '../../../node/federation/federation.js'

// Who may call what on the admin API: the probes without a token, /metrics with the admin or the
// read-only metrics token (or none from loopback when asked), everything else with the admin
// token only; and what /readyz answers.

const ADMIN = 'a'.repeat(64)
const METRICS = 'b'.repeat(64)

const raft = (over: Partial<RaftNodeStatus> = {}): RaftNodeStatus =>
  ({ group: 'org/acme', role: 'follower', term: 3, leader: 'f'.repeat(64), commit: 5, applied: 5, lastIndex: 5, voters: [], learners: [], ...over })
const federation = (over: Partial<FederationStatus> = {}): FederationStatus =>
  ({ id: 'g', epoch: 0, instance: 'i', orgs: [], changes: [], replica: 'r', member: true, hosting: false, received: 0, sent: 0, rejected: {}, ...over })

describe('admin API access', () => {
  let api: ApiServer | undefined
  const node = { raft: raft(), federation: undefined as FederationStatus | undefined }

  const serve = async (over: Partial<ApiInit> = {}): Promise<ApiServer> => {
    await api?.close()
    api = await startApi({
      host: '127.0.0.1', port: 0, token: ADMIN, metricsToken: METRICS, logger: silentLogger,
      routes: {
        ...healthRoutes({ raftStatus: () => node.raft, federationStatus: () => node.federation }),
        'GET /metrics': async () => ({ contentType: 'text/plain', body: 'fedmesh_up 1\n' }),
        'GET /v1/status': async () => ({ ok: true })
      },
      access: { ...HEALTH_ACCESS, 'GET /metrics': 'metrics' },
      ...over
    })
    return api
  }
  const status = async (path: string, token?: string): Promise<number> =>
    (await fetch(api!.url + path, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } })).status

  after(async () => { await api?.close() })

  it('opens the probes, takes either token for /metrics, and only the admin token elsewhere', async () => {
    await serve()
    assert.deepEqual(await Promise.all([status('/healthz'), status('/readyz')]), [200, 200])
    assert.deepEqual(await Promise.all([status('/metrics'), status('/metrics', METRICS), status('/metrics', ADMIN), status('/metrics', 'c'.repeat(64))]), [401, 200, 200, 401])
    assert.deepEqual(await Promise.all([status('/v1/status'), status('/v1/status', METRICS), status('/v1/status', ADMIN)]), [401, 401, 200])
    // An unknown path says 401 without the admin token, as every guarded route does.
    assert.deepEqual(await Promise.all([status('/v1/nothing'), status('/v1/nothing', METRICS), status('/v1/nothing', ADMIN)]), [401, 401, 404])
  })

  it('serves /metrics without a token to loopback clients when asked to, and nothing else', async () => {
    await serve({ metricsUnauthenticated: true })
    assert.deepEqual(await Promise.all([status('/metrics'), status('/v1/status')]), [200, 401])
    assert.deepEqual(['127.0.0.1', '127.3.4.5', '::1', '::ffff:127.0.0.1', '10.0.0.1', '::ffff:192.0.2.1', '::', undefined].map(isLoopback),
      [true, true, true, true, false, false, false, false])
  })

  it('answers /readyz 503 naming the failing check: no Raft leader, or a replica where it should not be', async () => {
    await serve()
    const readyz = async (): Promise<{ status: number, body: { ready: boolean, checks: Array<{ name: string, ok: boolean }> } }> => {
      const res = await fetch(api!.url + '/readyz')
      return { status: res.status, body: await res.json() as { ready: boolean, checks: Array<{ name: string, ok: boolean }> } }
    }
    node.raft = raft({ leader: null, role: 'candidate' })
    const leaderless = await readyz()
    assert.equal(leaderless.status, 503)
    assert.deepEqual(leaderless.body.checks.map((c) => [c.name, c.ok]), [['raft-leader', false]])
    assert.match(readiness({ raftStatus: () => node.raft, federationStatus: () => undefined })[0]!.detail, /no Raft leader known/)
    node.raft = raft()
    node.federation = federation({ hosting: true })
    const hostedOnFollower = await readyz()
    assert.equal(hostedOnFollower.status, 503)
    assert.deepEqual(hostedOnFollower.body.checks.map((c) => [c.name, c.ok]), [['raft-leader', true], ['federation-replica', false]])
    node.raft = raft({ role: 'leader' })
    assert.equal((await readyz()).status, 200, 'the leader hosts the replica')
    node.federation = federation({ hosting: false })
    assert.equal((await readyz()).status, 503, 'a leader that does not host the replica')
    node.federation = federation({ hosting: false, member: false })
    assert.equal((await readyz()).status, 200, 'a revoked org hosts no replica')
  })
})

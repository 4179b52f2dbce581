import assert from 'node:assert/strict'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseHostPort } from '../../../node/api/server.js'
import { START_DEFAULTS, resolveStartConfig } from '../../../node/runtime/config.js'

describe('start configuration', () => {
  let dir: string
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'fedmesh-config-')) })

  it('uses the embedded defaults when nothing is given', async () => {
    assert.deepEqual(await resolveStartConfig(dir, {}, {}), START_DEFAULTS)
  })

  it('takes a flag over an env var over the config file over the default', async () => {
    await writeFile(join(dir, 'config.json'), JSON.stringify({ org: 'file-org', api: '127.0.0.1:9000', heartbeatMs: 700, bootstrap: ['/ip4/127.0.0.1/tcp/1'] }))
    const env = { FEDMESH_ORG: 'env-org', FEDMESH_API: '127.0.0.1:9001', FEDMESH_LISTEN: '/ip4/127.0.0.1/tcp/2, /ip4/127.0.0.1/tcp/3', FEDMESH_RAFT_VOTERS_MAX: '3' }
    const config = await resolveStartConfig(dir, { org: 'flag-org' }, env)
    assert.equal(config.org, 'flag-org')
    assert.equal(config.api, '127.0.0.1:9001')
    assert.deepEqual(config.listen, ['/ip4/127.0.0.1/tcp/2', '/ip4/127.0.0.1/tcp/3'])
    assert.equal(config.heartbeatMs, 700)
    assert.deepEqual(config.bootstrap, ['/ip4/127.0.0.1/tcp/1'])
    assert.equal(config.join, undefined)
    assert.equal(config.raftVotersMax, 3)
    assert.equal(config.raftTickMs, undefined)
  })

  it('rejects unknown settings and bad numbers with a message naming them', async () => {
    await writeFile(join(dir, 'config.json'), JSON.stringify({ heartbeat: 5 }))
    await assert.rejects(resolveStartConfig(dir, {}, {}), /unknown setting 'heartbeat'/)
    await writeFile(join(dir, 'config.json'), '{}')
    await assert.rejects(resolveStartConfig(dir, { heartbeatMs: '-3' }, {}), /heartbeatMs must be a positive integer/)
  })

  it('takes 0 (off) for the dead-voter cleanup, from a flag or the environment, but no negative number', async () => {
    assert.equal((await resolveStartConfig(dir, { raftDeadVoterRemoveAfterMs: '0' }, {})).raftDeadVoterRemoveAfterMs, 0)
    assert.equal((await resolveStartConfig(dir, {}, { FEDMESH_RAFT_DEAD_VOTER_REMOVE_AFTER_MS: '60000' })).raftDeadVoterRemoveAfterMs, 60_000)
    await assert.rejects(resolveStartConfig(dir, { raftDeadVoterRemoveAfterMs: '-1' }, {}), /raftDeadVoterRemoveAfterMs must be a non-negative integer/)
  })

  it('parses host:port for the admin API', () => {
    assert.deepEqual(parseHostPort('127.0.0.1:0'), { host: '127.0.0.1', port: 0 })
    assert.deepEqual(parseHostPort('[::1]:7401'), { host: '::1', port: 7401 })
    assert.throws(() => parseHostPort('localhost'), /host:port/)
    assert.throws(() => parseHostPort('127.0.0.1:70000'), /host:port/)
  })
})

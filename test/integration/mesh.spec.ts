import '../../node/runtime/polyfills.js'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sealEnvelope } from '../../base/envelope.js'
import { NodeIdentity } from '../../base/ed25519.js'
import { encodeCertificate, issueCertificate } from '../../base/org-certificate.js'
import { Libp2pTransport } from '../../node/runtime/libp2p-transport.js'
import { silentLogger } from '../../base/log.js'
import { encodeAnnouncementBody, ANNOUNCE_TYPE } from '../../membership/announcement.js'
import { MEMBERSHIP_TOPIC } from '../../membership/membership.js'
import { CLI, CliNode, waitFor } from '../helpers/cli-node.js'
import { generateIdentity } from '../../node/runtime/key-file.js'

const run = promisify(execFile)
async function fedmesh (...args: string[]): Promise<{ stdout: string }> {
  return await run(process.execPath, [CLI, ...args], { timeout: 10_000 })
}

const HEARTBEAT_MS = 250
const SUSPECT_AFTER_MS = 750
const DEAD_AFTER_MS = 1500
const TIMING = ['--heartbeat-ms', String(HEARTBEAT_MS), '--suspect-after-ms', String(SUSPECT_AFTER_MS), '--dead-after-ms', String(DEAD_AFTER_MS)]

async function statusOf (observer: CliNode, key: string): Promise<{ status: string, incarnation: number } | undefined> {
  return (await observer.members()).find((m) => m.key === key)
}

async function allSee (observers: CliNode[], key: string, predicate: (m: { status: string, incarnation: number }) => boolean): Promise<boolean> {
  const views = await Promise.all(observers.map(async (o) => await statusOf(o, key)))
  return views.every((m) => m !== undefined && predicate(m))
}

describe('a mesh of 5 fedmesh processes on 127.0.0.1', function () {
  this.timeout(60_000)
  let root: string
  const nodes: CliNode[] = []

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'fedmesh-mesh-'))
    nodes.push(await CliNode.start(join(root, 'n0'), TIMING))
    const started = await Promise.all([1, 2, 3, 4].map(async (i) => await CliNode.start(join(root, `n${i}`), [...TIMING, '--org', `n${i}`, '--bootstrap', nodes[0]!.address])))
    nodes.push(...started)
  })

  after(async () => {
    await Promise.all(nodes.map(async (n) => { if (n.child.exitCode === null && n.child.signalCode === null) await n.kill('SIGKILL') }))
    await rm(root, { recursive: true, force: true })
  })

  it('every node lists all 5 as alive after joining through one bootstrap address', async () => {
    const keys = nodes.map((n) => n.key).sort()
    await waitFor('all 5 members alive on every node', async () => {
      const lists = await Promise.all(nodes.map(async (n) => await n.members()))
      return lists.every((list) => JSON.stringify(list.filter((m) => m.status === 'alive').map((m) => m.key).sort()) === JSON.stringify(keys))
    }, 10_000)
  })

  it('answers the CLI commands through the running node\'s admin API', async () => {
    const dataDir = nodes[0]!.dataDir
    assert.equal((await fetch(nodes[0]!.runtime.api + '/v1/status')).status, 401, 'no token')
    assert.equal((await fetch(nodes[0]!.runtime.api + '/v1/status', { headers: { authorization: 'Bearer nope' } })).status, 401, 'wrong token')
    const members = JSON.parse((await fedmesh('members', '--json', '--data-dir', dataDir)).stdout) as Array<{ key: string }>
    assert.equal(members.length, 5)
    const status = JSON.parse((await fedmesh('status', '--json', '--data-dir', dataDir)).stdout) as { key: string, members: { alive: number } }
    assert.equal(status.key, nodes[0]!.key)
    assert.equal(status.members.alive, 5)
    assert.match((await fedmesh('audit', 'verify', '--data-dir', dataDir)).stdout, /^ok: \d+ entries/)
    assert.match((await fedmesh('audit', 'tail', '-n', '50', '--data-dir', dataDir)).stdout, /member\.joined/)
    assert.equal(JSON.parse((await fedmesh('id', '--json', '--data-dir', dataDir)).stdout).key, nodes[0]!.key)
  })

  it('marks a SIGKILLed node dead within the configured timeout, and it rejoins with a higher incarnation', async () => {
    const victim = nodes[4]!
    const others = nodes.slice(0, 4)
    const before = (await statusOf(others[0]!, victim.key))!.incarnation
    await victim.kill('SIGKILL')
    const killedMs = Date.now()
    await waitFor('the killed node to be dead everywhere', async () => await allSee(others, victim.key, (m) => m.status === 'dead'), DEAD_AFTER_MS + 4 * HEARTBEAT_MS + 2000)
    const detectedMs = Date.now() - killedMs
    assert.ok(detectedMs >= SUSPECT_AFTER_MS, `declared dead after only ${detectedMs} ms`)

    nodes[4] = await CliNode.start(victim.dataDir, [...TIMING, '--bootstrap', nodes[0]!.address])
    assert.equal(nodes[4].key, victim.key, 'same data dir, same key')
    await waitFor('the restarted node to be alive with a higher incarnation', async () => await allSee(others, victim.key, (m) => m.status === 'alive' && m.incarnation > before), 10_000)
  })

  it('sees a SIGTERMed node as left, not dead', async () => {
    const leaver = nodes[3]!
    const others = [nodes[0]!, nodes[1]!, nodes[2]!, nodes[4]!]
    // The node restarted by the previous test must be in the gossip mesh first: a leave is sent once.
    await waitFor('every other node to see the leaver alive', async () => await allSee(others, leaver.key, (m) => m.status === 'alive'), 10_000)
    const code = await leaver.kill('SIGTERM')
    assert.equal(code, 0, `graceful exit; stderr: ${leaver.stderr.slice(-2000)}`)
    await waitFor('the leaver to be left everywhere', async () => await allSee(others, leaver.key, (m) => m.status === 'left'), 5_000)
      .catch(async (err) => { throw new Error(`${(err as Error).message}; views: ${JSON.stringify(await Promise.all(others.map(async (o) => await statusOf(o, leaver.key))))}; leaver log: ${leaver.stderr.slice(-3000)}`) })
  })

  it('rejects forged announcements with a counted reason and quarantines the forger', async () => {
    const intruder = generateIdentity()
    const impersonated = generateIdentity()
    const transport = await Libp2pTransport.create({ identity: intruder, listen: ['/ip4/127.0.0.1/tcp/0'], logger: silentLogger })
    try {
      await transport.dial([nodes[0]!.address])
      await waitFor('the bootstrap node to be a topic peer', () => transport.pubsub.getSubscribers(MEMBERSHIP_TOPIC).length > 0, 5_000, 20)
      let seq = 0
      const certificateOf = (node: NodeIdentity): Uint8Array => encodeCertificate(issueCertificate(generateIdentity(), { org: 'acme', node: node.publicKey, issuedAtMs: Date.now() }))
      const intruderCertificate = certificateOf(intruder)
      const announcement = (signer: NodeIdentity, certificate = intruderCertificate): Uint8Array => sealEnvelope(signer, {
        type: ANNOUNCE_TYPE, org: 'acme', timestampMs: Date.now(), nonce: intruder.sign(new Uint8Array([++seq])).slice(0, 16),
        body: encodeAnnouncementBody({ incarnation: 1, seq, addrs: transport.multiaddrs(), capabilities: [], certificate })
      })
      // Control: a correctly signed announcement on the same path makes a member.
      await transport.publish(MEMBERSHIP_TOPIC, announcement(intruder))
      await waitFor('a valid announcement to make a member', async () => (await statusOf(nodes[0]!, intruder.publicKeyHex))?.status === 'alive', 5_000)

      const badSignature = announcement(intruder)
      badSignature[badSignature.length - 1] = badSignature[badSignature.length - 1]! ^ 0xff
      await transport.publish(MEMBERSHIP_TOPIC, badSignature)
      await transport.publish(MEMBERSHIP_TOPIC, announcement(impersonated))
      await transport.publish(MEMBERSHIP_TOPIC, new TextEncoder().encode('garbage on the topic'))
      await transport.publish(MEMBERSHIP_TOPIC, announcement(intruder, certificateOf(impersonated)))

      const metric = (reason: string): RegExp => new RegExp(`fedmesh_envelopes_total\\{result="rejected",reason="${reason}"\\} [1-9]`)
      // Gossip names no author (a relay may hand on another's announcement): the signer is the would-be
      // member, and its certificate must name it, so the announcement signed by another key fails there too.
      const certMismatches = /fedmesh_envelopes_total\{result="rejected",reason="cert-mismatch"\} ([0-9]+)/
      await waitFor('the four rejections to be counted', async () => {
        const text = await nodes[0]!.get<string>('/metrics')
        return ['bad-signature', 'malformed'].every((reason) => metric(reason).test(text)) && Number(certMismatches.exec(text)?.[1] ?? 0) >= 2
      }, 5_000)
      assert.equal(await statusOf(nodes[0]!, impersonated.publicKeyHex), undefined, 'an impersonated key never becomes a member')
      const trust = await nodes[0]!.get<Array<{ peer: string, quarantined: boolean, events: Array<{ type: string }> }>>('/v1/trust')
      const record = trust.find((t) => t.peer === intruder.publicKeyHex)
      assert.ok(record?.quarantined === true && record.events.some((e) => e.type === 'invalid-signature'), 'the forger is quarantined')
      assert.equal((await nodes[0]!.get<{ members: { alive: number } }>('/v1/status')).members.alive >= 4, true, 'the node survived the garbage')
    } finally {
      await transport.stop()
    }
  })
})

// Membership benchmark: convergence of N real processes joining through one bootstrap address,
// detection time of a SIGKILLed member, and gossip publish→delivery latency of signed announcements
// side by side with raw gossipsub delivery of the same size, in the same run.
//   npm run bench:membership [-- --sizes 5,10,20 --messages 400]
import '../node/runtime/polyfills.js'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { openEnvelope, ReplayGuard, sealEnvelope } from '../base/envelope.js'
import { Libp2pTransport } from '../node/runtime/libp2p-transport.js'
import { silentLogger } from '../base/log.js'
import { cryptoRng } from '../node/runtime/system-clock.js'
import { encodeCertificate, issueCertificate } from '../base/org-certificate.js'
import { encodeAnnouncementBody, ANNOUNCE_TYPE } from '../membership/announcement.js'
import { CliNode, waitFor } from '../test/helpers/cli-node.js'
import { percentile, round, writeResult } from './stats.js'
import { generateIdentity } from '../node/runtime/key-file.js'

const { values: opts } = parseArgs({ options: { sizes: { type: 'string', default: '5,10,20' }, messages: { type: 'string', default: '400' }, 'heartbeat-ms': { type: 'string', default: '1000' } } })
const HEARTBEAT_MS = Number(opts['heartbeat-ms'])
const TIMING = ['--heartbeat-ms', String(HEARTBEAT_MS)]

async function convergence (size: number): Promise<Record<string, number>> {
  const root = await mkdtemp(join(tmpdir(), 'fedmesh-bench-'))
  const nodes: CliNode[] = []
  try {
    nodes.push(await CliNode.start(join(root, 'n0'), TIMING))
    const spawnMs = performance.now()
    nodes.push(...await Promise.all(Array.from({ length: size - 1 }, async (_, i) => await CliNode.start(join(root, `n${i + 1}`), [...TIMING, '--org', `n${i + 1}`, '--bootstrap', nodes[0]!.address]))))
    const allUpMs = performance.now()
    const keys = new Set(nodes.map((n) => n.key))
    await waitFor(`${size} nodes to converge`, async () => {
      const lists = await Promise.all(nodes.map(async (n) => await n.members()))
      return lists.every((list) => list.filter((m) => m.status === 'alive' && keys.has(m.key)).length === size)
    }, 60_000, 200)
    const convergedMs = performance.now()

    const victim = nodes[size - 1]!
    const others = nodes.slice(0, size - 1)
    await victim.kill('SIGKILL')
    const killedMs = performance.now()
    await waitFor('the killed node to be dead everywhere', async () => {
      const views = await Promise.all(others.map(async (o) => (await o.members()).find((m) => m.key === victim.key)?.status))
      return views.every((s) => s === 'dead')
    }, 60_000, 200)
    const result = {
      nodes: size,
      startAllMs: round(allUpMs - spawnMs),
      convergeAfterAllUpMs: round(convergedMs - allUpMs),
      convergeAfterAllUpHeartbeats: round((convergedMs - allUpMs) / HEARTBEAT_MS),
      convergeFromFirstSpawnMs: round(convergedMs - spawnMs),
      deadDetectionMs: round(performance.now() - killedMs),
      deadAfterMsConfigured: 6 * HEARTBEAT_MS
    }
    console.log(JSON.stringify(result))
    return result
  } finally {
    await Promise.all(nodes.map(async (n) => { if (n.child.exitCode === null && n.child.signalCode === null) await n.kill('SIGKILL') }))
    await rm(root, { recursive: true, force: true })
  }
}

// Three transports in this process, B→A←C: C publishes, B receives through A (two hops). Raw and
// signed messages alternate on two topics so both see the same load; latency is measured with one
// process-local monotonic clock.
async function latency (messages: number): Promise<Record<string, unknown>> {
  const ids = [generateIdentity(), generateIdentity(), generateIdentity()]
  const [a, b, c] = await Promise.all(ids.map(async (identity) => await Libp2pTransport.create({ identity, listen: ['/ip4/127.0.0.1/tcp/0'], logger: silentLogger, gossipHeartbeatMs: 200 })))
  const sent = new Map<string, number>()
  const raw: number[] = []
  const signed: number[] = []
  const guard = new ReplayGuard()
  try {
    for (const t of [a!, b!, c!]) {
      t.onTopic('bench/raw', () => 'accept')
      t.onTopic('bench/signed', (_from, bytes) => { openEnvelope(bytes, { nowMs: Date.now() }); return 'accept' })
    }
    b!.onTopic('bench/raw', (_from, bytes) => { record(raw, bytes.subarray(0, 8)); return 'accept' })
    b!.onTopic('bench/signed', (_from, bytes) => {
      const envelope = openEnvelope(bytes, { nowMs: Date.now(), replayGuard: guard })
      record(signed, envelope.nonce.subarray(0, 8))
      return 'accept'
    })
    await b!.dial(a!.multiaddrs())
    await c!.dial(a!.multiaddrs())
    await waitFor('the mesh to form', () => c!.pubsub.getSubscribers('bench/signed').length > 0 && b!.pubsub.getSubscribers('bench/signed').length > 0, 10_000, 10)
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const certificate = encodeCertificate(issueCertificate(generateIdentity(), { org: 'bench', node: ids[2]!.publicKey, issuedAtMs: Date.now() }))
    const body = encodeAnnouncementBody({ incarnation: 1, seq: 1, addrs: c!.multiaddrs(), capabilities: ['summarize'], certificate })
    for (let i = 0; i < messages; i++) {
      const nonce = cryptoRng.bytes(16)
      const id = Buffer.from(nonce.subarray(0, 8)).toString('hex')
      const rawBytes = new Uint8Array(body.length + 200)
      rawBytes.set(nonce.subarray(0, 8))
      sent.set(id + 'r', performance.now())
      await c!.publish('bench/raw', rawBytes)
      sent.set(id + 's', performance.now())
      await c!.publish('bench/signed', sealEnvelope(ids[2]!, { type: ANNOUNCE_TYPE, org: 'bench', body, timestampMs: Date.now(), nonce }))
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    await waitFor('deliveries', () => raw.length >= messages * 0.99 && signed.length >= messages * 0.99, 10_000, 20)
  } finally {
    await Promise.all([a, b, c].map(async (t) => await t?.stop()))
  }
  function record (into: number[], idBytes: Uint8Array): void {
    const id = Buffer.from(idBytes).toString('hex') + (into === raw ? 'r' : 's')
    const at = sent.get(id)
    if (at !== undefined) into.push(performance.now() - at)
  }
  const summary = (xs: number[]): Record<string, number> => ({ count: xs.length, p50Ms: round(percentile(xs, 50), 3), p99Ms: round(percentile(xs, 99), 3) })
  const result = {
    hops: 2,
    raw: summary(raw),
    signed: summary(signed),
    signingOverheadP50: round(percentile(signed, 50) / percentile(raw, 50) - 1, 3),
    signingOverheadP99: round(percentile(signed, 99) / percentile(raw, 99) - 1, 3)
  }
  console.log(JSON.stringify(result))
  return result
}

const sizes = opts.sizes.split(',').map(Number)
const results = { heartbeatMs: HEARTBEAT_MS, latency: await latency(Number(opts.messages)), convergence: [] as Array<Record<string, number>> }
for (const size of sizes) results.convergence.push(await convergence(size))
console.log(`wrote ${await writeResult('membership', results)}`)

import assert from 'node:assert/strict'
import { decodeCanonical, encodeCanonical } from '../../../base/codec.js'
import type { FederationOp } from '../../../node/federation/ops.js'
import { type FederationConfig, instanceId } from '../../../node/federation/config.js'
import { type BatchRequest, FederationState } from '../../../node/federation/state.js'
import { type TestOrg, configOf, makeOrg, signedRequest, taskOp } from '../../helpers/federation-ops.js'

// The federation state every org applies from PBFT batches: results must be identical bytes in every
// org, so these tests compare whole results and snapshots, and drive votes across an epoch change.

type Org = TestOrg
const ORGS = ['alpha', 'bravo', 'charlie', 'delta'].map(makeOrg)
const GENESIS = 'ab'.repeat(16)
const CONFIG: FederationConfig = configOf(GENESIS, ORGS)
const request = signedRequest

function outcome (result: Uint8Array): [number, number, number, string, string] {
  return decodeCanonical(result) as [number, number, number, string, string]
}

const task = taskOp
const revokeDelta: FederationOp = { kind: 'revoke', root: ORGS[3]!.root.publicKeyHex }

describe('federation state (applied by every org from PBFT batches)', () => {
  it('applies tasks once per client, answers a replayed batch with the same results', () => {
    const s = new FederationState(CONFIG)
    const r1 = request(ORGS[0]!, GENESIS, task('one'))
    const first = s.apply({ config: CONFIG, instance: GENESIS, seq: 1, requests: [r1, request(ORGS[1]!, GENESIS, task('two'))] })
    assert.deepEqual(first.results.map((r) => outcome(r).slice(3)), [['applied', ''], ['applied', '']])
    assert.deepEqual(first.tasks.map((t) => [t.position, t.opened.op.title, t.opened.org]), [[0, 'one', 'alpha'], [1, 'two', 'bravo']])
    // The same client ordered again (a retry at a restored primary): answered as before, not re-applied.
    const again = s.apply({ config: CONFIG, instance: GENESIS, seq: 2, requests: [r1] })
    assert.deepEqual(again.results, [first.results[0]])
    assert.equal(again.tasks.length, 0)
    // A new host replaying batch 1 gets the org's results back and changes nothing.
    assert.deepEqual(s.apply({ config: CONFIG, instance: GENESIS, seq: 1, requests: [] }).results, first.results)
    assert.equal(s.lastSeq, 2)
  })

  it('refuses forged and misattributed ops alike in every org', () => {
    const s = new FederationState(CONFIG)
    const [alpha, bravo] = [ORGS[0]!, ORGS[1]!]
    const good = request(alpha, GENESIS, task('ok'))
    const stolenClient = { ...request(alpha, GENESIS, task('x')), client: `${bravo.root.publicKeyHex}.${bravo.node.publicKeyHex}.z` }
    const otherEpoch = request(alpha, 'cd'.repeat(16), task('replayed from another epoch'))
    const tampered = { ...good, client: good.client + 'x', op: good.op }
    const outsider = makeOrg('mallory')
    const results = s.apply({ config: CONFIG, instance: GENESIS, seq: 1, requests: [stolenClient, otherEpoch, tampered, request(outsider, GENESIS, task('m')), { client: 'q', timestamp: 1, op: encodeCanonical(['task']) }] })
    assert.deepEqual(results.results.map((r) => outcome(r).slice(3)), [
      ['refused', 'op-client-mismatch'], ['refused', 'op-bad-signature'], ['refused', 'op-bad-signature'], ['refused', 'not-a-member'], ['refused', 'op-malformed']
    ])
    assert.equal(results.tasks.length, 0)
  })

  it('revokes an org once a quorum of members approved, then starts a new epoch; later requests end with the old one', () => {
    const s = new FederationState(CONFIG)
    const votes = (orgs: Org[]): BatchRequest[] => orgs.map((o) => request(o, GENESIS, revokeDelta))
    const first = s.apply({ config: CONFIG, instance: GENESIS, seq: 1, requests: [...votes([ORGS[0]!, ORGS[1]!]), request(ORGS[0]!, GENESIS, revokeDelta)] })
    assert.deepEqual(first.results.map((r) => outcome(r).slice(3)), [['approved', '1/3'], ['approved', '2/3'], ['approved', '2/3']])
    assert.equal(first.change, undefined)
    const late = request(ORGS[1]!, GENESIS, task('after the vote'))
    const second = s.apply({ config: CONFIG, instance: GENESIS, seq: 2, requests: [...votes([ORGS[2]!]), late] })
    assert.deepEqual(second.results.map((r) => outcome(r).slice(3)), [['passed', '3/3'], ['epoch-ended', '']])
    assert.equal(outcome(second.results[1]!)[0], 1, 'epoch-ended names the epoch that replaced the request\'s')
    assert.deepEqual(second.change, { action: 'revoke', org: { name: 'delta', root: ORGS[3]!.root.publicKeyHex }, epoch: 1, seq: 2 })
    assert.equal(s.config.epoch, 1)
    assert.deepEqual(s.config.orgs.map((o) => o.name).sort(), ['alpha', 'bravo', 'charlie'])
    const next = instanceId(s.config)
    assert.notEqual(next, GENESIS)
    // A new host replaying the closing batch gets the same answers; later old-instance batches change nothing.
    assert.deepEqual(s.apply({ config: CONFIG, instance: GENESIS, seq: 2, requests: [...votes([ORGS[2]!]), late] }).results, second.results)
    assert.deepEqual(s.apply({ config: CONFIG, instance: GENESIS, seq: 3, requests: [late] }).results.map((r) => outcome(r)[3]), ['epoch-ended'])
    // The revoked org can no longer propose; the others can, in the new instance, starting at seq 1.
    const after = s.apply({ config: CONFIG, instance: next, seq: 1, requests: [request(ORGS[3]!, next, task('d')), request(ORGS[1]!, next, task('after the vote'))] })
    assert.deepEqual(after.results.map((r) => outcome(r).slice(0, 4)), [[1, 1, 0, 'refused'], [1, 1, 1, 'applied']])
    // Three members left: a further revocation would leave fewer than 3.
    const lone = s.apply({ config: CONFIG, instance: next, seq: 2, requests: [request(ORGS[0]!, next, { kind: 'revoke', root: ORGS[1]!.root.publicKeyHex })] })
    assert.deepEqual(outcome(lone.results[0]!).slice(3), ['refused', 'too-few-members'])
  })

  it('certifies the ended instance\'s final state at its later checkpoints, however far each org got into the new epoch', () => {
    // Found by the federation simulator (seed 7, 4 × 3, an admission vote): the digest at a later
    // checkpoint of the old instance was the digest of the org's state in the new epoch, so orgs
    // disagreed on it and a laggard of the old epoch could never replay to it.
    const [ahead, behind] = [new FederationState(CONFIG), new FederationState(CONFIG)]
    const votes = ORGS.slice(0, 3).map((o) => request(o, GENESIS, revokeDelta))
    const closingOf = (s: FederationState) => s.apply({ config: CONFIG, instance: GENESIS, seq: 1, requests: votes })
    const [a, b] = [closingOf(ahead), closingOf(behind)]
    assert.deepEqual(a.results, b.results)
    const next = instanceId(ahead.config)
    const own = ahead.apply({ config: CONFIG, instance: next, seq: 1, requests: [request(ORGS[0]!, next, task('new epoch'))], checkpoint: true })
    const late = { config: CONFIG, instance: GENESIS, seq: 4, requests: [request(ORGS[1]!, GENESIS, task('late'))], checkpoint: true }
    const [fromAhead, fromBehind] = [ahead.apply(late), behind.apply(late)]
    assert.ok(fromAhead.digest !== undefined)
    assert.deepEqual(fromAhead.digest, fromBehind.digest)
    assert.notDeepEqual(fromAhead.digest, own.digest)
    // The new epoch's own checkpoint is untouched by the old instance's: a replay of it gets its digest back.
    assert.deepEqual(ahead.apply({ config: CONFIG, instance: next, seq: 1, requests: [], checkpoint: true }).digest, own.digest)
    // And a snapshot keeps the closing digest.
    const restored = FederationState.decode(decodeCanonical(encodeCanonical(behind.encode())))
    assert.deepEqual(restored.apply(late).digest, fromBehind.digest)
  })

  it('answers a request executed before the vote and ordered again after it with its result, not epoch-ended', () => {
    // Found by the federation simulator (seed 52, 4 × 3, an admission vote): 'epoch-ended' had the
    // proposer re-submit the task into the new epoch, and it was applied twice.
    const s = new FederationState(CONFIG)
    const early = request(ORGS[0]!, GENESIS, task('before the vote'))
    const applied = s.apply({ config: CONFIG, instance: GENESIS, seq: 1, requests: [early] })
    s.apply({ config: CONFIG, instance: GENESIS, seq: 2, requests: ORGS.slice(0, 3).map((o) => request(o, GENESIS, revokeDelta)) })
    assert.equal(s.config.epoch, 1)
    const again = { config: CONFIG, instance: GENESIS, seq: 3, requests: [early, request(ORGS[1]!, GENESIS, task('late'))] }
    const results = s.apply(again).results
    assert.deepEqual(results[0], applied.results[0])
    assert.equal(outcome(results[1]!)[3], 'epoch-ended')
    // Also after a restart from a snapshot.
    assert.deepEqual(FederationState.decode(decodeCanonical(encodeCanonical(s.encode()))).apply(again).results, results)
    // Its proposer, having heard nothing before the epoch changed, re-submits it (same client) into the new one.
    const next = instanceId(s.config)
    const resubmitted = request(ORGS[0]!, next, task('before the vote'), early.client)
    const inNext = s.apply({ config: CONFIG, instance: next, seq: 1, requests: [resubmitted] })
    assert.deepEqual(inNext.results, applied.results, 'answered with its result in the old epoch')
    assert.equal(inNext.tasks.length, 0, 'not applied twice')
  })

  it('admits an org into a new epoch; it starts from the member list alone and computes the same results', () => {
    const s = new FederationState(CONFIG)
    const echo = makeOrg('echo')
    const admit: FederationOp = { kind: 'admit', name: 'echo', root: echo.root.publicKeyHex }
    const passed = s.apply({ config: CONFIG, instance: GENESIS, seq: 1, requests: ORGS.slice(0, 3).map((o) => request(o, GENESIS, admit)) })
    assert.equal(outcome(passed.results[2]!)[3], 'passed')
    assert.equal(s.config.orgs.length, 5)
    // The admitted org imports the new epoch's config (fedmesh federation export) and applies the next batch.
    const newcomer = new FederationState(s.config)
    const instance = instanceId(s.config)
    const batch = { config: s.config, instance, seq: 1, requests: [request(echo, instance, task('hello')), request(ORGS[0]!, instance, { kind: 'anchor', auditSeq: 7, head: 'ee'.repeat(32) })] }
    const mine = s.apply(batch)
    const theirs = newcomer.apply(batch)
    assert.deepEqual(theirs.results, mine.results)
    assert.deepEqual(mine.results.map((r) => outcome(r)[3]), ['applied', 'recorded'])
    assert.deepEqual(s.anchorsOf(ORGS[0]!.node.publicKeyHex).map((a) => [a.auditSeq, a.head]), [[7, 'ee'.repeat(32)]])
  })

  it('snapshots deterministically and restores to the same behaviour', () => {
    const s = new FederationState(CONFIG)
    s.apply({ config: CONFIG, instance: GENESIS, seq: 1, requests: [request(ORGS[0]!, GENESIS, revokeDelta), request(ORGS[1]!, GENESIS, revokeDelta), request(ORGS[1]!, GENESIS, { kind: 'anchor', auditSeq: 3, head: '11'.repeat(32) })] })
    const bytes = encodeCanonical(s.encode())
    const restored = FederationState.decode(decodeCanonical(bytes))
    assert.deepEqual(encodeCanonical(restored.encode()), bytes)
    const votes = [request(ORGS[2]!, GENESIS, revokeDelta)]
    assert.deepEqual(restored.apply({ config: CONFIG, instance: GENESIS, seq: 2, requests: votes }).results, s.apply({ config: CONFIG, instance: GENESIS, seq: 2, requests: votes }).results)
    assert.equal(restored.config.epoch, 1)
    assert.throws(() => FederationState.decode(['x']), /bad federation state/)
  })

  it('lets only the target org claim a federated task, and only its claimer finish it', () => {
    const s = new FederationState(CONFIG)
    const [alpha, bravo, charlie] = [ORGS[0]!, ORGS[1]!, ORGS[2]!]
    s.apply({ config: CONFIG, instance: GENESIS, seq: 1, requests: [request(alpha, GENESIS, { ...task('for charlie'), target: charlie.root.publicKeyHex } as FederationOp), request(alpha, GENESIS, task('for anyone'))] })
    const claims = s.apply({ config: CONFIG, instance: GENESIS, seq: 2, requests: [
      request(bravo, GENESIS, { kind: 'claim', ref: '0.1.0' }),
      request(charlie, GENESIS, { kind: 'claim', ref: '0.1.0' }),
      request(charlie, GENESIS, { kind: 'claim', ref: '0.1.0' }),
      request(bravo, GENESIS, { kind: 'claim', ref: '0.1.1' }),
      request(bravo, GENESIS, { kind: 'claim', ref: '0.9.0' }),
      request(bravo, GENESIS, { kind: 'finish', ref: '0.1.0', status: 'done', result: '1' })
    ] })
    assert.deepEqual(claims.results.map((r) => outcome(r).slice(3)), [
      ['refused', 'not-the-target'], ['applied', ''], ['refused', 'already-claimed'], ['applied', ''], ['refused', 'unknown-task'], ['refused', 'not-the-claimer']
    ])
    assert.deepEqual(claims.updates.map((u) => [u.ref, u.status, u.node]), [['0.1.0', 'claimed', charlie.node.publicKeyHex], ['0.1.1', 'claimed', bravo.node.publicKeyHex]])
    const done = s.apply({ config: CONFIG, instance: GENESIS, seq: 3, requests: [
      request(charlie, GENESIS, { kind: 'finish', ref: '0.1.0', status: 'done', result: '{"ok":true}' }),
      request(charlie, GENESIS, { kind: 'finish', ref: '0.1.0', status: 'failed', result: 'null' })
    ] })
    // Finishing (or claiming) a finished task says so, not 'unknown-task' — also after a snapshot.
    assert.deepEqual(done.results.map((r) => outcome(r).slice(3)), [['applied', ''], ['refused', 'already-done']])
    assert.deepEqual(done.updates, [{ ref: '0.1.0', status: 'done', node: charlie.node.publicKeyHex, result: '{"ok":true}' }])
    const restored = FederationState.decode(decodeCanonical(encodeCanonical(s.encode())))
    const again = restored.apply({ config: CONFIG, instance: GENESIS, seq: 4, requests: [request(bravo, GENESIS, { kind: 'claim', ref: '0.1.0' })] })
    assert.deepEqual(again.results.map((r) => outcome(r).slice(3)), [['refused', 'already-done']])
  })

  it('reads snapshots and state cores from nodes that kept no finished tasks (one core field less)', () => {
    const s = new FederationState(CONFIG)
    s.apply({ config: CONFIG, instance: GENESIS, seq: 1, requests: [request(ORGS[0]!, GENESIS, task('t'))] })
    const snapshot = s.encode()
    const older = [...snapshot.slice(0, 6), ...snapshot.slice(7)]
    const decoded = FederationState.decode(older)
    assert.equal(decoded.lastSeq, 1)
    const core = decodeCanonical(s.exportCore()) as unknown[]
    const fresh = new FederationState(CONFIG)
    fresh.installCore(GENESIS, encodeCanonical(core.slice(0, 6)))
    assert.equal(fresh.lastSeq, 1)
  })
})

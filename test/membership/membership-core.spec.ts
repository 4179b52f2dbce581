import assert from 'node:assert/strict'
import { MembershipCore } from '../../membership/membership-core.js'
import type { Announcement } from '../../membership/announcement.js'
import { decodeAnnouncementBody, encodeAnnouncementBody } from '../../membership/announcement.js'
import { FedmeshError } from '../../base/errors.js'
import { encodeCanonical } from '../../base/codec.js'

const config = { suspectAfterMs: 300, deadAfterMs: 600, forgetAfterMs: 5000, membersMax: 3 }

function alive (key: string, incarnation: number, seq: number): Announcement {
  return { kind: 'alive', key, org: 'acme', root: 'r00t', addrs: ['/ip4/127.0.0.1/tcp/1'], capabilities: ['summarize'], incarnation, seq }
}

describe('membership core', () => {
  let core: MembershipCore
  beforeEach(() => { core = new MembershipCore('self', config) })

  it('joins on a first announcement and ignores stale or duplicate ones', () => {
    const first = core.receive(alive('b', 1, 1), 0)
    assert.equal(first.verdict, 'accept')
    assert.equal(first.verdict === 'accept' && first.change?.kind, 'joined')
    assert.deepEqual(core.receive(alive('b', 1, 1), 10), { verdict: 'ignore', reason: 'stale' })
    assert.deepEqual(core.receive(alive('b', 1, 0), 10), { verdict: 'ignore', reason: 'stale' })
    assert.deepEqual(core.receive(alive('b', 1, 2), 10), { verdict: 'accept' })
    assert.deepEqual(core.receive(alive('self', 1, 1), 10), { verdict: 'ignore', reason: 'self' })
  })

  it('suspects, then declares dead a silent member; recovers a suspect that speaks again', () => {
    core.receive(alive('b', 1, 1), 0)
    core.receive(alive('c', 1, 1), 0)
    assert.deepEqual(core.tick(300), [])
    core.receive(alive('c', 1, 2), 250)
    assert.deepEqual(core.tick(301).map((c) => [c.kind, c.member.key]), [['suspected', 'b']])
    assert.deepEqual(core.tick(601).map((c) => [c.kind, c.member.key]), [['died', 'b'], ['suspected', 'c']])
    const back = core.receive(alive('c', 1, 3), 650)
    assert.equal(back.verdict === 'accept' && back.change?.kind, 'recovered')
    assert.equal(core.get('c')?.status, 'alive')
    assert.equal(core.get('b')?.status, 'dead')
  })

  it('rejoins a dead member only with a fresh announcement, reporting the new incarnation', () => {
    core.receive(alive('b', 1, 7), 0)
    core.tick(301)
    core.tick(601)
    const rejoin = core.receive(alive('b', 2, 1), 700)
    assert.equal(rejoin.verdict === 'accept' && rejoin.change?.kind, 'rejoined')
    assert.equal(core.get('b')?.incarnation, 2)
  })

  it('marks a member left on leave, and a later heartbeat of the same incarnation does not revive it', () => {
    core.receive(alive('b', 1, 1), 0)
    const leave = core.receive({ ...alive('b', 1, 2), kind: 'leave' }, 10)
    assert.equal(leave.verdict === 'accept' && leave.change?.kind, 'left')
    assert.deepEqual(core.receive(alive('b', 1, 3), 20), { verdict: 'ignore', reason: 'stale' })
    assert.equal(core.get('b')?.status, 'left')
    assert.deepEqual(core.receive({ ...alive('x', 1, 1), kind: 'leave' }, 20), { verdict: 'ignore', reason: 'unknown-leave' })
  })

  it('forgets dead and left members after forgetAfterMs', () => {
    core.receive(alive('b', 1, 1), 0)
    core.receive({ ...alive('b', 1, 2), kind: 'leave' }, 10)
    assert.deepEqual(core.tick(5011).map((c) => c.kind), ['forgotten'])
    assert.equal(core.get('b'), undefined)
  })

  it('expels a live member at once (revoked org), and only a live one', () => {
    core.receive(alive('b', 1, 1), 0)
    core.receive(alive('c', 1, 1), 0)
    core.receive({ ...alive('c', 1, 2), kind: 'leave' }, 10)
    const change = core.expel('b', 20)
    assert.deepEqual([change?.kind, change?.member.status, change?.member.sinceMs], ['expelled', 'dead', 20])
    assert.equal(core.get('b')?.status, 'dead')
    assert.equal(core.expel('b', 30), undefined, 'already out of the view')
    assert.equal(core.expel('c', 30), undefined, 'left members stay left')
    assert.equal(core.expel('nobody', 30), undefined)
    assert.deepEqual(core.tick(5021).map((c) => [c.kind, c.member.key]), [['forgotten', 'b'], ['forgotten', 'c']])
  })

  it('bounds the member table', () => {
    for (const key of ['a', 'b', 'c']) core.receive(alive(key, 1, 1), 0)
    assert.deepEqual(core.receive(alive('d', 1, 1), 0), { verdict: 'ignore', reason: 'table-full' })
    assert.equal(core.members().length, 3)
  })

  it('encodes announcement bodies canonically and rejects malformed ones with a typed error', () => {
    const body = { incarnation: 3, seq: 9, addrs: ['/ip4/127.0.0.1/tcp/4010'], capabilities: ['a', 'b'], certificate: new Uint8Array([1, 2, 3]) }
    assert.deepEqual(decodeAnnouncementBody(encodeAnnouncementBody(body)), body)
    const bad = [
      encodeCanonical({ v: 2, inc: 1, seq: 1, addrs: [], caps: [] }),
      encodeCanonical({ v: 1, inc: -1, seq: 1, addrs: [], caps: [] }),
      encodeCanonical({ v: 1, inc: 1, seq: 1, addrs: new Array(17).fill('/ip4/1.2.3.4/tcp/1'), caps: [] }),
      encodeCanonical({ v: 1, inc: 1, seq: 1, addrs: [], caps: ['x'.repeat(65)], cert: new Uint8Array(1) }),
      encodeCanonical({ v: 1, inc: 1, seq: 1, addrs: [], caps: [] }),
      encodeCanonical({ v: 1, inc: 1, seq: 1, addrs: [], caps: [], cert: new Uint8Array(513) }),
      encodeCanonical([1, 2, 3])
    ]
    for (const bytes of bad) assert.throws(() => decodeAnnouncementBody(bytes), FedmeshError)
  })
})

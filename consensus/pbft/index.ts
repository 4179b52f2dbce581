// PBFT across organisations (one replica per org): a pure core (pbft.ts) in the shape of the Raft
// core, its signed wire messages, the pure view-change proofs and the client's reply rule.
// A shell (the org's Raft leader) drives it like this:
//
//   const core = new PbftCore({ id: org, replicas, publicKeys, signer, restore })  // restore: from the org's Raft log
//   every tick:              core.tick()
//   on bytes from a peer:    core.step(decodePbftMessage(bytes))   // PbftDecodeError → drop + count
//   on a client request:     core.propose(op, { client, seq: timestamp })   // PbftRequestError → refuse the request
//   whenever core.hasReady():
//     const rd = core.ready()
//     await commitThroughRaft(rd.promises, rd.stable)   // BEFORE sending: the org may not contradict itself
//     for (const { to, message } of rd.messages) send(to, encodePbftMessage(message))
//     for (const b of rd.committed) core.applied(b.seq, apply(b.requests), b.seq % K === 0 ? stateDigest() : undefined)
//     if (rd.fetchState) fetch a state whose sha256 is stateDigest from a peer; if core.stateInstalled(seq, digest) install it
//     for (const e of rd.evidence) audit e and zero the trust of org e.replica
//     core.advance(rd)
export * from './pbft.js'
export * from './messages.js'
export * from './view-change.js'
export * from './client.js'
export * from './errors.js'

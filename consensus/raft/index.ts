// Raft for one organisation's group: a pure core (raft.ts) in the shape of etcd-io/raft's RawNode,
// its wire messages, its storage view and durable persistence. A shell drives it like this:
//
//   const persistence = new RaftPersistence(storage, group)
//   const core = new RaftCore({ id, rng, storage: await persistence.load(founders), takeSnapshot })
//   every tickMs:            core.tick()
//   on bytes from a peer:    core.step(decodeRaftMessage(bytes))   // RaftDecodeError → drop + count
//   on a client request:     core.propose(data, requestId) / core.readIndex(context)
//   whenever core.hasReady():
//     const rd = core.ready()
//     await persistence.save(rd)                    // hard state + entries + snapshot, one synced batch
//     for (const m of rd.messages) send(m.to, encodeRaftMessage(m))
//     if (rd.snapshot) stateMachine.restore(rd.snapshot.data)   // empty data = initial state
//     for (const e of rd.committedEntries) stateMachine.apply(e) // 'normal' entries; skip empty no-ops
//     for (const rs of rd.readStates) serve the read once applied >= rs.index
//     core.advance(rd)
export * from '../types.js'
export * from './raft.js'
export * from './raft-storage.js'
export * from './raft-persistence.js'
export * from './messages.js'
export * from './conf-change.js'
export * from './force-new-group.js'
export * from './dedup.js'
export * from './errors.js'
export { Progress, type ProgressState } from './progress.js'

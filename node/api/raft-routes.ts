import { ApiError, type RouteHandler } from './server.js'
import { answer, body } from './task-routes.js'
import type { LeaveResult, RaftMembers } from '../../consensus/raft/driver.js'

/** What the membership lifecycle routes need of a running node. */
export interface RaftApiNode {
  raftMembers(): Promise<RaftMembers>
  removeMember(key: string): Promise<void>
  leaveGroup(): Promise<LeaveResult>
  stop(): Promise<void>
}

// The org's Raft membership lifecycle: list the members and remove one (both answered by the
// leader, asked from whichever member serves the call), and leave (remove this node, then stop).
export function raftRoutes (node: RaftApiNode): Record<string, RouteHandler> {
  return {
    'GET /v1/raft/members': async () => await answer(async () => await node.raftMembers()),
    'POST /v1/raft/remove': async (_url, req) => await answer(async () => {
      const key = body(req).key
      if (typeof key !== 'string' || !/^[0-9a-f]{64}$/.test(key)) throw new ApiError(400, 'key must be a member\'s public key (64 hex characters)')
      await node.removeMember(key)
      return { removed: key }
    }),
    'POST /v1/leave': async (_url, req) => await answer(async () => {
      const result = await node.leaveGroup()
      // The node stops once this answer is out; the `fedmesh start` process then exits.
      req.afterResponse(() => { void node.stop().catch(() => undefined) })
      return result
    })
  }
}

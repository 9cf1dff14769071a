import { describe, expect, it } from 'vitest'
import { localFederations } from './fixtures.ts'

const startFederation = localFederations()

describe('a node stopped while it starts (real `sustain join` processes)', () => {
  it('SIGTERM as its front door listens (the overlay still starting): it logs node stopped and exits 0 on its own', async () => {
    // Seen in the fault lab: the signal's close ran beside the start, the start then opened the overlay
    // after it, and the process logged `node stopped` but never exited.
    const fed = await startFederation({ nodes: 2, front_door: {} })
    const node = fed.nodes[1]!
    await node.waitFor((r) => r.event === 'front_door_listening', 60_000, 'its front door listening')
    expect(node.records.some((r) => r.event === 'node_started')).toBe(false) // the start is under way
    node.signal('SIGTERM', 'node')
    // Its own stop, not the 10 s guard (which would log stop_overran and exit 1).
    await node.waitExit(30_000)
    expect(node.records.some((r) => r.event === 'node_stopped')).toBe(true)
    expect(node.records.find((r) => r.event === 'stop_overran')).toBeUndefined()
    expect(node.child!.exitCode).toBe(0)
  }, 120_000)
})

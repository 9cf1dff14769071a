import { describe, expect, it } from 'vitest'
import type { LocalFederation, LocalNode } from '../../src/demo/local-federation.ts'
import { getReplica, REPLICA_HTTP_DIR } from '../../src/demo/replica-http.ts'
import { localFederations } from './fixtures.ts'

const startFederation = localFederations()

/** Polls a node's status until `ok` holds (the nodes' own view; bounded). */
async function until(
  node: LocalNode,
  ok: (s: NonNullable<Awaited<ReturnType<LocalNode['status']>>>) => boolean,
  timeout_ms: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeout_ms
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    const status = await node.status(1000)
    if (status && ok(status)) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`timed out after ${timeout_ms} ms waiting for ${what} on ${node.name}`)
}

/** Replicas serving as the nodes themselves report it. */
async function serving(fed: LocalFederation): Promise<LocalNode[]> {
  const out: LocalNode[] = []
  for (const node of fed.nodes)
    if (node.running && (await node.status(1000))?.replica?.serving) out.push(node)
  return out
}

describe('Type0 replicas end to end (real node processes, loopback testnet)', () => {
  it('replicas 2 of 3 nodes: connections spread over both; SIGKILL of one, the third serves, answers go on', async () => {
    const fed = await startFederation({
      nodes: 3,
      service_dir: REPLICA_HTTP_DIR,
      front_door: { port_name: 'http' },
    })
    const [entry, second, third] = fed.nodes as [LocalNode, LocalNode, LocalNode]
    const door = entry.front_door!
    // Priorities 30, 20, 10: the first two serve; the client keeps to the first one's front door.
    await until(entry, (s) => s.replica?.servers.length === 2 && s.replica.serving, 90_000, 'two replicas')
    expect((await serving(fed)).map((n) => n.name).sort()).toEqual([entry.name, second.name])

    const answered = new Map<number, number>()
    for (let i = 0; i < 20; i++) {
      const port = await getReplica(door.host, door.port, 10_000)
      answered.set(port, (answered.get(port) ?? 0) + 1)
    }
    // Least connections with ties taken in turn: both replicas answer, the local one and the forwarded.
    expect([...answered.keys()].sort()).toEqual([entry.port, second.port].sort())

    // A client that keeps asking while one replica's machine dies (node and service, SIGKILL).
    const failures: string[] = []
    const seen = new Map<number, number>()
    let stop = false
    const client = (async () => {
      for (let i = 0; i < 100_000 && !stop; i++) {
        try {
          const port = await getReplica(door.host, door.port, 10_000)
          seen.set(port, (seen.get(port) ?? 0) + 1)
        } catch (error) {
          failures.push((error as Error).message)
        }
      }
    })()
    // Some answers from both before the kill (bounded: the client's own timeouts end each request).
    const asked_by = Date.now() + 30_000
    while ((seen.get(second.port) ?? 0) < 2 && Date.now() < asked_by)
      await new Promise((resolve) => setTimeout(resolve, 50))
    second.signal('SIGKILL')
    const killed_at = seen.get(second.port) ?? 0
    await until(third, (s) => s.replica?.serving === true, 60_000, 'the third node to serve')
    await until(
      entry,
      (s) => s.replica?.servers.includes(s.peers.find((p) => p.name === third.name)?.key ?? '-') === true,
      60_000,
      'the entry to see the third serve',
    )
    const before = seen.get(third.port) ?? 0
    const target = before + 5
    const deadline = Date.now() + 60_000
    while ((seen.get(third.port) ?? 0) < target && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 100))
    const failures_before_stop = failures.length
    stop = true
    await client
    console.log(
      `replicas: answers ${JSON.stringify(Object.fromEntries(seen))}, failures ${failures_before_stop}: ${failures.slice(0, 3).join('; ')}`,
    )
    expect(seen.get(third.port) ?? 0).toBeGreaterThanOrEqual(target)
    expect(seen.get(entry.port) ?? 0).toBeGreaterThan(0)
    // The killed replica answers no more; at most the requests in flight when it died failed.
    expect(seen.get(second.port) ?? 0).toBeLessThanOrEqual(killed_at + 1)
    expect(failures_before_stop).toBeLessThanOrEqual(2)
    expect((await serving(fed)).map((n) => n.name).sort()).toEqual([entry.name, third.name])
  })
})

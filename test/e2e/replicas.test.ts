import { once } from 'node:events'
import net from 'node:net'
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

/** A kept-alive HTTP connection through a front door: which replica it reached, and asking again on it. */
interface Kept {
  socket: net.Socket
  replica: number
  closed: Promise<void>
  ask: () => Promise<number>
}

async function keptConnection(host: string, port: number): Promise<Kept> {
  const socket = net.connect({ host, port })
  socket.on('error', () => {}) // 'close' follows
  const closed = once(socket, 'close').then(() => {})
  let buffer = ''
  let waiting: ((replica: number) => void) | null = null
  socket.setEncoding('utf8')
  socket.on('data', (chunk: string) => {
    buffer += chunk
    const m = /replica (\d+) GET/.exec(buffer)
    if (m && waiting) {
      buffer = ''
      const resolve = waiting
      waiting = null
      resolve(Number(m[1]))
    }
  })
  const ask = () =>
    new Promise<number>((resolve, reject) => {
      waiting = resolve
      void closed.then(() => reject(new Error('connection closed before the answer')))
      socket.write('GET /kept HTTP/1.1\r\nHost: replicas\r\nConnection: keep-alive\r\n\r\n')
    })
  await once(socket, 'connect')
  return { socket, replica: await ask(), closed, ask }
}

/** Rejects when `promise` has not settled within `timeout_ms` (a bound, not a timing assertion). */
function within<T>(promise: Promise<T>, timeout_ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${timeout_ms} ms`)), timeout_ms)
  })
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}

/** Waits until exactly `expected` serve, as the nodes report it (bounded). */
async function servingSet(fed: LocalFederation, expected: LocalNode[], timeout_ms: number): Promise<void> {
  const want = expected.map((n) => n.name).sort()
  const deadline = Date.now() + timeout_ms
  let got: string[] = []
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    got = (await serving(fed)).map((n) => n.name).sort()
    if (JSON.stringify(got) === JSON.stringify(want)) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  expect(got).toEqual(want)
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
    // A node that starts late (tsx compiles under load) joins the set and the third steps back.
    await servingSet(fed, [entry, second], 90_000)
    const keys = await Promise.all([entry, second].map(async (n) => (await n.status())!.node.key))
    await until(
      entry,
      (s) => JSON.stringify(s.replica?.servers.toSorted()) === JSON.stringify(keys.toSorted()),
      60_000,
      'the entry to see both replicas',
    )

    const answered = new Map<number, number>()
    for (let i = 0; i < 20; i++) {
      const port = await getReplica(door.host, door.port, 10_000)
      answered.set(port, (answered.get(port) ?? 0) + 1)
    }
    // Least connections with ties taken in turn: both replicas answer, the local one and the forwarded.
    expect([...answered.keys()].sort()).toEqual([entry.port, second.port].sort())

    // Connections kept open, one on each replica (least connections sends the next to the other one;
    // a few tries, as the GETs' own closes may still be counted when the first is made).
    const kept: Kept[] = []
    for (let i = 0; i < 8 && new Set(kept.map((k) => k.replica)).size < 2; i++)
      kept.push(await keptConnection(door.host, door.port))
    const on_second = kept.find((k) => k.replica === second.port)
    const on_entry = kept.find((k) => k.replica === entry.port)
    expect(on_second && on_entry).toBeTruthy()
    for (const k of kept) if (k !== on_second && k !== on_entry) k.socket.destroy()

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
    // Its connections close promptly (the forwarding stream dies with it); the local replica's stay.
    await within(on_second!.closed, 30_000, "the dead replica's connection to close")
    expect(await within(on_entry!.ask(), 30_000, 'an answer on the kept local connection')).toBe(entry.port)
    on_entry!.socket.destroy()
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
    await servingSet(fed, [entry, third], 60_000)
  })
})

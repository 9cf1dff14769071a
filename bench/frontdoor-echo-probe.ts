/**
 * The front door's own cost, without a node's other work: two members in this process on a local
 * testnet (test/frontdoor/pair.ts) and an echo service. Per path (direct, the server's door, the
 * origin's door, taking turns): connect-to-first-byte (a fresh connection and its first round trip)
 * and the median round trip of 1-byte pings on an open connection. A diagnostic for issue 17's added
 * latency; the figures of record come from bench:frontdoor.
 * Usage: bash test/loopback-only.sh npx tsx bench/frontdoor-echo-probe.ts [--rounds N]
 */

import { once } from 'node:events'
import net from 'node:net'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { startTestnet } from '../overlay/testnet.ts'
import { FrontDoorPair } from '../test/frontdoor/pair.ts'

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '200' } } })
const ROUNDS = Number(values.rounds)
const PINGS = 10

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return Math.round(s[Math.floor((s.length - 1) / 2)]! * 1000) / 1000
}

async function echoService(): Promise<net.Server> {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.setNoDelay(true)
    socket.on('error', () => {})
    socket.pipe(socket)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return server
}

/** A fresh connection: ms to the first echo, then each ping's round trip. */
async function session(port: number): Promise<{ first: number; pings: number[] }> {
  const started = performance.now()
  const socket = net.connect({ host: '127.0.0.1', port })
  socket.setNoDelay(true)
  socket.on('error', () => {})
  const next = () => once(socket, 'data')
  socket.write('x')
  await next()
  const first = performance.now() - started
  const pings: number[] = []
  for (let i = 0; i < PINGS; i++) {
    const t = performance.now()
    socket.write('x')
    await next()
    pings.push(performance.now() - t)
  }
  socket.end()
  await once(socket, 'close')
  return { first, pings }
}

const testnet = await startTestnet(5)
const echo = await echoService()
const echo_port = (echo.address() as net.AddressInfo).port
const pair = await FrontDoorPair.start(testnet, echo_port)
try {
  const paths = {
    direct: echo_port,
    via_server: pair.server.port.listen_port,
    via_origin: pair.origin.port.listen_port,
  }
  type Path = keyof typeof paths
  const firsts: Record<Path, number[]> = { direct: [], via_server: [], via_origin: [] }
  const pings: Record<Path, number[]> = { direct: [], via_server: [], via_origin: [] }
  for (let i = 0; i < 5; i++) for (const p of Object.keys(paths) as Path[]) await session(paths[p])
  for (let i = 0; i < ROUNDS; i++) {
    for (const p of Object.keys(paths) as Path[]) {
      const s = await session(paths[p])
      firsts[p].push(s.first)
      pings[p].push(...s.pings)
    }
  }
  const rows = ['path\tfirst_echo_ms\tping_rtt_ms\tfirst_added\tping_added']
  for (const p of Object.keys(paths) as Path[]) {
    rows.push(
      [
        p,
        median(firsts[p]),
        median(pings[p]),
        median(firsts[p].map((v, i) => v - firsts.direct[i]!)),
        median(pings[p].map((v, i) => v - pings.direct[i]!)),
      ].join('\t'),
    )
  }
  process.stdout.write(`${rows.join('\n')}\n`)
} finally {
  await pair.stop()
  echo.close()
  await testnet.destroy()
}

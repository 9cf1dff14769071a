// A stateless HTTP service (a Type0 example): every answer names the port this copy listens on, so a
// client (test/e2e/replicas.test.ts, bench/types.ts) can tell which replica answered it.
import http from 'node:http'

const port = Number(process.env.SUSTAIN_PORT)
if (!Number.isInteger(port) || port <= 0) {
  console.error(`SUSTAIN_PORT must be a port number, got ${process.env.SUSTAIN_PORT}`)
  process.exit(2)
}
const server = http.createServer((req, res) => {
  const body = `replica ${port} ${req.method} ${req.url}\n`
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) })
  res.end(body)
})
// An idle kept-alive connection stays open a minute (test/e2e/replicas.test.ts keeps one across a kill).
server.keepAliveTimeout = 60_000
server.listen(port, '127.0.0.1')
for (const signal of ['SIGTERM', 'SIGINT'])
  process.once(signal, () => {
    server.close(() => process.exit(0))
    server.closeAllConnections()
  })

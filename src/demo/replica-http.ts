import { copyFile, mkdir, readFile } from 'node:fs/promises'
import http from 'node:http'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { writeFileAtomic } from '../../lib/atomic-write.ts'

/** The example Type0 service (examples/replica-http): a stateless HTTP server, `replicas: 2`. */
export const REPLICA_HTTP_DIR = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'examples',
  'replica-http',
)

/** A copy of the example service asking for `replicas` copies (benchmarks compare 1, 2, 3). */
export async function replicaServiceDir(dir: string, replicas: number): Promise<string> {
  await mkdir(dir, { recursive: true })
  await copyFile(join(REPLICA_HTTP_DIR, 'server.mjs'), join(dir, 'server.mjs'))
  const manifest = await readFile(join(REPLICA_HTTP_DIR, 'sustain-service.yaml'), 'utf8')
  const changed = manifest.replace(/^replicas: \d+$/m, `replicas: ${replicas}`)
  if (!changed.includes(`replicas: ${replicas}`)) throw new Error('the example manifest has no replicas line')
  await writeFileAtomic(join(dir, 'sustain-service.yaml'), changed)
  return dir
}

/**
 * One GET on a fresh connection (no keep-alive: every request is a new connection, so the front door
 * chooses a replica for each). Resolves with the port of the replica that answered; rejects on an
 * error, a non-200 answer or no answer within `timeout_ms`.
 */
export function getReplica(host: string, port: number, timeout_ms: number, path = '/'): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path, agent: false, timeout: timeout_ms }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('error', reject)
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8')
        const m = /^replica (\d+) /.exec(body)
        if (res.statusCode !== 200 || !m) reject(new Error(`unexpected answer ${res.statusCode}: ${body}`))
        else resolve(Number(m[1]))
      })
    })
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeout_ms} ms`)))
    req.on('error', reject)
  })
}

import { createServer } from 'node:net'
import type { ServiceManifest } from '../drivers/process/manifest.ts'
import { resolveExecutable } from '../drivers/process/resolve-command.ts'

export class PreflightError extends Error {}

/** The service's port must be free on 127.0.0.1 now, or this node could never serve. */
export async function checkPortFree(port: number, host = '127.0.0.1'): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const server = createServer()
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        new PreflightError(
          error.code === 'EADDRINUSE'
            ? `port ${port} is in use on ${host}: choose another --port for this node's service`
            : `cannot listen on ${host}:${port}: ${error.message}`,
        ),
      ),
    )
    server.listen(port, host, () => server.close(() => resolve()))
  })
}

/** Fail at `join`, not at the first failover, when the service cannot start here. */
export async function preflightService(
  manifest: ServiceManifest,
  service_dir: string,
  port: number,
): Promise<void> {
  await resolveExecutable(manifest.command[0]!, service_dir, `service command of ${manifest.name}:`)
  await checkPortFree(port)
}

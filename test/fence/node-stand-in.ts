/**
 * A node reduced to its service, for tests and benchmarks that SIGKILL it: what `sustain join` does with
 * its driver (createDriver reclaims what an earlier run left, then the driver fences and starts the
 * service), nothing else. Usage: node --import tsx node-stand-in.ts SERVICE_DIR DATA_DIR PORT
 * Prints one JSON line on stdout once the service is started: { "pid": <the service's leader> }.
 * Logs (JSON) go to stderr. Runs until killed; SIGTERM stops the service first.
 */

import { createLogger } from '../../lib/log.ts'
import type { SustainConfig } from '../../src/config/schema.ts'
import { createDriver } from '../../src/runtime/create-driver.ts'

const [service_dir, data_dir, port] = process.argv.slice(2)
if (!service_dir || !data_dir || !port) throw new Error('usage: node-stand-in.ts SERVICE_DIR DATA_DIR PORT')
const log = createLogger({ level: 'info' })
const config = { service: { dir: service_dir, port: Number(port) } } as SustainConfig
const driver = await createDriver(config, data_dir, log)
if (!driver) throw new Error('no service in the config')
driver.on('event', (event) => log.info({ event: 'driver', ...event }, 'driver event'))
await driver.start()
process.stdout.write(`${JSON.stringify({ pid: (driver as unknown as { pid: number | null }).pid })}\n`)
process.once('SIGTERM', () => {
  void driver.close().then(() => process.exit(0))
})
setInterval(() => {}, 1 << 30)

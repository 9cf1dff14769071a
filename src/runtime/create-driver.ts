import type { SustainConfig } from '../config/schema.ts'
import type { ServiceDriver } from '../drivers/driver.ts'
import { createProcessDriver, loadServiceManifest } from '../drivers/process/index.ts'
import type { Logger } from '../util/log.ts'
import { nodePaths } from './paths.ts'
import { preflightService } from './preflight.ts'

/** The driver a node's config asks for; null when the node only stores snapshots. */
export async function createDriver(
  config: SustainConfig,
  data_dir: string,
  log: Logger,
): Promise<ServiceDriver | null> {
  if (!config.service) return null
  const manifest = await loadServiceManifest(config.service.dir)
  await preflightService(manifest, config.service.dir, config.service.port)
  return createProcessDriver({
    service_dir: config.service.dir,
    state_dir: nodePaths(data_dir).service_state,
    port: config.service.port,
    log: log.child({ module: 'service' }),
    manifest,
  })
}

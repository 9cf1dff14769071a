import type { Logger } from '../../lib/log.ts'
import { ConfigError } from '../config/load.ts'
import type { SustainConfig } from '../config/schema.ts'
import { refusal, type ServiceType } from '../core/service-type.ts'
import type { ServiceDriver } from '../drivers/driver.ts'
import { reclaimLeftovers } from '../drivers/fence/index.ts'
import { createProcessDriver, loadServiceManifest } from '../drivers/process/index.ts'
import {
  clientForwards,
  createQemuDriver,
  loadQemuManifest,
  manifestDriverKind,
} from '../drivers/qemu/index.ts'
import { clientPortEnv } from '../frontdoor/ports.ts'
import { nodePaths } from './paths.ts'
import { checkPortFree, preflightService } from './preflight.ts'

/** A service whose type no federation can provide (`cannot`) is refused before anything starts. */
function refuseType(manifest: { name: string; type: ServiceType }): void {
  const why = refusal(manifest.type, manifest.name)
  if (why !== null) throw new ConfigError(why)
}

/** The service type (Table 1) of the node's service; null for a storage-only node. */
export async function serviceType(config: SustainConfig): Promise<ServiceType | null> {
  if (!config.service) return null
  const { dir } = config.service
  const manifest =
    (await manifestDriverKind(dir)) === 'qemu' ? await loadQemuManifest(dir) : await loadServiceManifest(dir)
  return manifest.type
}

/**
 * How many nodes run a Type0 service at once (the process manifest's `replicas`); null when the
 * manifest does not ask for replicas (one server with snapshots) or there is no service.
 */
export async function serviceReplicas(config: SustainConfig): Promise<number | null> {
  if (!config.service) return null
  const { dir } = config.service
  if ((await manifestDriverKind(dir)) === 'qemu') return null
  const manifest = await loadServiceManifest(dir)
  const replicas = manifest.type === 'type0' ? (manifest.replicas ?? null) : null
  if (replicas !== null && (config.service.output_commit ?? 'off') !== 'off')
    throw new ConfigError(
      `service ${manifest.name} runs as ${replicas} type0 replicas, which keep no state: output commit ` +
        '(service.output_commit) has no snapshot to wait for; set it to off, or remove replicas from the manifest',
    )
  return replicas
}

/** The driver a node's config asks for (its service manifest names it); null for a storage-only node. */
export async function createDriver(
  config: SustainConfig,
  data_dir: string,
  log: Logger,
): Promise<ServiceDriver | null> {
  if (!config.service) return null
  const { dir, port } = config.service
  const options = {
    service_dir: dir,
    state_dir: nodePaths(data_dir).service_state,
    port,
    log: log.child({ module: 'service' }),
  }
  // Before anything else uses the state directory or the port: stop what an earlier run left on them.
  await reclaimLeftovers(options)
  if ((await manifestDriverKind(dir)) === 'qemu') {
    const manifest = await loadQemuManifest(dir)
    refuseType(manifest)
    const client_forwards = clientForwards(manifest, config.service.ports)
    await checkPortFree(port)
    for (const forward of client_forwards) await checkPortFree(forward.host_port)
    return createQemuDriver({ ...options, manifest, client_forwards })
  }
  const manifest = await loadServiceManifest(dir)
  refuseType(manifest)
  await preflightService(manifest, dir, port)
  return createProcessDriver({
    ...options,
    manifest,
    port_env: clientPortEnv(manifest.client_ports, config.service.ports),
  })
}

import { ConfigError } from '../config/load.ts'
import type { SustainConfig } from '../config/schema.ts'
import { loadServiceManifest } from '../drivers/process/index.ts'
import { loadQemuManifest, manifestDriverKind } from '../drivers/qemu/index.ts'
import { type DeclaredPort, type FrontDoorPort, qemuDeclaredPorts, resolveFrontDoorPorts } from './ports.ts'

/**
 * The front door's ports for this node's config: none without a `front_door` section; a ConfigError
 * naming every problem when the node config and the service's declared client ports do not fit.
 */
export async function loadFrontDoorPorts(config: SustainConfig): Promise<FrontDoorPort[]> {
  if (!config.front_door) return []
  if (!config.service) throw new ConfigError('field front_door: set, but the node has no service section')
  let declared: DeclaredPort[]
  if ((await manifestDriverKind(config.service.dir)) === 'qemu') {
    const manifest = await loadQemuManifest(config.service.dir)
    if (manifest.network === 'none') {
      throw new ConfigError(
        `field front_door: set, but the guest of ${config.service.dir}/sustain-service.yaml has no NIC (network: none): no client port can reach it`,
      )
    }
    declared = qemuDeclaredPorts(manifest)
  } else declared = (await loadServiceManifest(config.service.dir)).client_ports
  const resolved = resolveFrontDoorPorts(config, declared)
  if (!resolved.ok)
    throw new ConfigError(`front door does not fit the service:\n  ${resolved.problems.join('\n  ')}`)
  if (resolved.ports.length === 0) {
    throw new ConfigError(
      `field front_door: set, but ${config.service.dir}/sustain-service.yaml declares no client_ports`,
    )
  }
  return resolved.ports
}

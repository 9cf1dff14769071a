import type { SustainConfig } from '../config/schema.ts'
import type { ClientPort } from '../drivers/process/manifest.ts'
import type { QemuServiceManifest } from '../drivers/qemu/index.ts'

/**
 * A client port as the service declares it: a process's (`env` names the variable it learns its port
 * from) or a QEMU guest's (`guest_port` inside the guest, reached by a hostfwd from the same loopback port).
 */
export type DeclaredPort = Pick<ClientPort, 'name' | 'env' | 'proxy_protocol'> & { guest_port?: number }

/**
 * A QEMU guest's client ports in the front door's terms: the one on `ports.service` is reached through the
 * node's `service.port` (SUSTAIN_PORT), every other through the node's `service.ports.NAME`.
 */
export function qemuDeclaredPorts(manifest: QemuServiceManifest): DeclaredPort[] {
  return manifest.client_ports.map((p) => ({
    name: p.name,
    env:
      p.guest_port === manifest.ports?.service
        ? 'SUSTAIN_PORT'
        : `SUSTAIN_PORT_${p.name.toUpperCase().replaceAll('-', '_')}`,
    proxy_protocol: p.proxy_protocol,
    guest_port: p.guest_port,
  }))
}

/** One client port as this node runs it. */
export interface FrontDoorPort {
  name: string
  /** Where this node's front door listens for the port's clients. */
  listen_port: number
  /** The service's own port on 127.0.0.1 (reached only on the server). */
  service_port: number
  /** The process learns service_port from this variable. */
  env: string
  proxy_protocol: boolean
}

/**
 * The front door's ports from the service's declared client ports and the node config. Returns the
 * problems instead when they do not fit together (each names the field, its value and what was
 * expected), so `config check` and `join` can print every one of them.
 */
export function resolveFrontDoorPorts(
  config: SustainConfig,
  declared: readonly DeclaredPort[],
): { ok: true; ports: FrontDoorPort[] } | { ok: false; problems: string[] } {
  const front = config.front_door
  const service = config.service
  const problems: string[] = []
  if (!front) return { ok: true, ports: [] }
  if (!service) return { ok: false, problems: ['field front_door: set, but the node has no service section'] }
  const names = new Set(declared.map((p) => p.name))
  for (const name of Object.keys(front.ports)) {
    if (!names.has(name)) {
      problems.push(
        `field front_door.ports.${name}: got a port for "${name}", expected one of the service's client ports (${[...names].join(', ') || 'none declared'})`,
      )
    }
  }
  const ports: FrontDoorPort[] = []
  for (const port of declared) {
    const listen_port = front.ports[port.name]
    if (listen_port === undefined) {
      problems.push(
        `field front_door.ports.${port.name}: missing, expected the TCP port this node listens on`,
      )
      continue
    }
    const service_port = port.env === 'SUSTAIN_PORT' ? service.port : service.ports?.[port.name]
    if (service_port === undefined) {
      problems.push(
        port.guest_port === undefined
          ? `field service.ports.${port.name}: missing, expected the loopback port the service listens on (${port.env})`
          : `field service.ports.${port.name}: missing, expected the loopback port forwarded to guest port ${port.guest_port}`,
      )
      continue
    }
    ports.push({
      name: port.name,
      listen_port,
      service_port,
      env: port.env,
      proxy_protocol: port.proxy_protocol,
    })
  }
  const listens = ports.map((p) => p.listen_port)
  const clash = listens.find((p, i) => listens.indexOf(p) !== i)
  if (clash !== undefined)
    problems.push(`field front_door.ports: got ${clash} twice, expected one port per client port`)
  for (const p of ports) {
    if (front.bind.startsWith('127.') && p.listen_port === p.service_port) {
      problems.push(
        `field front_door.ports.${p.name}: got ${p.listen_port}, the service's own port; expected another port`,
      )
    }
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, ports }
}

/** The environment the service process gets for its client ports other than SUSTAIN_PORT. */
export function clientPortEnv(
  declared: readonly ClientPort[],
  service_ports: Record<string, number> | undefined,
): Record<string, string> {
  const env: Record<string, string> = {}
  for (const p of declared) {
    const port = service_ports?.[p.name]
    if (p.env !== 'SUSTAIN_PORT' && port !== undefined) env[p.env] = String(port)
  }
  return env
}

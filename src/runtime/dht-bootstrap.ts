import { once } from 'node:events'
import HyperDHT from 'hyperdht'
import type { Logger } from '../../lib/log.ts'
import { formatHostPort, type HostPort, parseHostPort } from '../config/host-port.ts'
import type { SustainConfig } from '../config/schema.ts'

/** The DHT bootstrap nodes this node's planes start from; undefined: the public DHT's. */
export function bootstrapNodes(config: SustainConfig): HostPort[] | undefined {
  const { federation } = config
  if (federation.bootstrap.length === 0 && federation.public_dht) return undefined
  return federation.bootstrap.map((text) => {
    const node = parseHostPort(text)
    if (node === null) throw new Error(`bootstrap node "${text}" is not host:port`) // the schema let it by
    return node
  })
}

/** This node's own address as a bootstrap node, when it serves one. */
export function servedBootstrap(config: SustainConfig): string | null {
  const { host, serve_bootstrap_port } = config.federation
  return serve_bootstrap_port === 0 ? null : formatHostPort({ host, port: serve_bootstrap_port })
}

/**
 * Serve a DHT bootstrap node on federation.host:serve_bootstrap_port in this process (hyperdht's own
 * `bootstrapper`, as `hyperdht --bootstrap` runs it), so a federation on a LAN needs no DHT of others.
 * It starts from the other bootstrap nodes in the config, so the federation's bootstrap nodes know each
 * other. Resolves once its socket is bound; null when the config does not ask for one.
 */
export async function serveBootstrap(config: SustainConfig, log: Logger): Promise<HyperDHT | null> {
  const self = servedBootstrap(config)
  if (self === null) return null
  const others = (bootstrapNodes(config) ?? []).filter((node) => formatHostPort(node) !== self)
  const { host, serve_bootstrap_port: port } = config.federation
  const dht = HyperDHT.bootstrapper(port, host, { bootstrap: others })
  try {
    // Bound is enough: bootstrapping from the others can wait on peers that are down.
    await Promise.race([once(dht, 'listening'), dht.fullyBootstrapped()])
  } catch (error) {
    await dht.destroy().catch(() => {})
    throw new Error(`cannot serve the DHT bootstrap node on ${self}: ${(error as Error).message}`)
  }
  log.info({ event: 'bootstrap_serving', address: self }, `serving a DHT bootstrap node on ${self}`)
  return dht
}

import assert from 'node:assert/strict'
import type { HostPort } from 'hyperdht'
import createTestnet from 'hyperdht/testnet.js'

export interface LocalTestnet {
  bootstrap: HostPort[]
  destroy(): Promise<void>
}

/**
 * A local hyperdht testnet for the demo and the tests. At least 5 nodes: with fewer, loopback
 * holepunching can leave half-open connections (holepunch.md G1). Destroy it after every swarm that
 * uses it, or swarm teardown waits ~5 s on unannounces to dead nodes (G5).
 */
export async function startTestnet(size = 5, host = '127.0.0.1'): Promise<LocalTestnet> {
  assert(size >= 5, 'a local testnet needs at least 5 nodes')
  const testnet = await createTestnet(size, { host })
  return {
    bootstrap: testnet.bootstrap.map((b) => ({ host: b.host, port: b.port })),
    destroy: () => testnet.destroy(),
  }
}

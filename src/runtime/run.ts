import { mkdir } from 'node:fs/promises'
import type { Server } from 'node:net'
import type HyperDHT from 'hyperdht'
import type { Logger } from '../../lib/log.ts'
import { readIdentity } from '../config/identity.ts'
import type { SustainConfig } from '../config/schema.ts'
import { loadFrontDoorPorts } from '../frontdoor/load-ports.ts'
import { claimSocket, startControlServer } from './control-server.ts'
import { createDriver } from './create-driver.ts'
import { serveBootstrap } from './dht-bootstrap.ts'
import { installLastWords } from './last-words.ts'
import { startMetrics } from './metrics.ts'
import { SustainNode } from './node.ts'
import { nodePaths } from './paths.ts'
import { recordTimeline } from './timeline-file.ts'

/**
 * Runs one node in this process until it exits (leave) or is told to stop (SIGTERM/SIGINT/SIGHUP, or an
 * uncaught error: last-words.ts; peers hear a resign and elect at once instead of waiting for silence).
 */
export async function runNode(
  data_dir: string,
  config: SustainConfig,
  log: Logger,
  options: { metrics_port?: number } = {},
): Promise<void> {
  const paths = nodePaths(data_dir)
  await claimSocket(paths.socket) // before opening anything: one node per data directory
  const keyPair = await readIdentity(paths.identity)
  await mkdir(paths.dir, { recursive: true })
  const front_door_ports = await loadFrontDoorPorts(config)
  const driver = await createDriver(config, data_dir, log)
  const node = new SustainNode({ data_dir, config, keyPair, log, driver, front_door_ports })
  const stopRecording = await recordTimeline(node, paths.timeline)
  let control: Server | null = null
  let metrics: Server | null = null
  let bootstrap_server: HyperDHT | null = null
  // Last words: a resign goes out (and is flushed, at most 200 ms) before the connections close.
  const removeLastWords = installLastWords({
    speak: (reason) => node.terminate(reason),
    stop: (signal) => {
      log.info({ event: 'signal', signal }, `stopping on ${signal}`)
      void node.close()
    },
    fatal: (error, origin) => log.fatal({ err: error, origin }, 'uncaught error: resigning and exiting'),
  })
  try {
    bootstrap_server = await serveBootstrap(config, log)
    await node.start()
    control = await startControlServer(node, paths.socket, log)
    if (options.metrics_port !== undefined) {
      metrics = await startMetrics(node, options.metrics_port)
      log.info(
        { event: 'metrics', url: `http://127.0.0.1:${options.metrics_port}/metrics` },
        'metrics served',
      )
    }
    await node.exited
  } finally {
    removeLastWords()
    await node.close()
    await stopRecording()
    await bootstrap_server?.destroy()
    for (const server of [control, metrics]) {
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()))
    }
    log.info({ event: 'node_stopped' }, 'node stopped')
  }
}

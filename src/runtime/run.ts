import { mkdir } from 'node:fs/promises'
import type { Server } from 'node:net'
import type HyperDHT from 'hyperdht'
import type { Logger } from '../../lib/log.ts'
import { traceThreadStalls } from '../../lib/stall-trace.ts'
import { readIdentity } from '../config/identity.ts'
import type { SustainConfig } from '../config/schema.ts'
import { loadFrontDoorPorts } from '../frontdoor/load-ports.ts'
import { claimSocket, startControlServer } from './control-server.ts'
import { createDriver, serviceReplicas, serviceType } from './create-driver.ts'
import { serveBootstrap } from './dht-bootstrap.ts'
import { installLastWords } from './last-words.ts'
import { startMetrics } from './metrics.ts'
import { SustainNode } from './node.ts'
import { nodePaths } from './paths.ts'
import { recordTimeline } from './timeline-file.ts'

/** A node told to stop that has not exited this long after the signal exits anyway (status 1). */
export const STOP_DEADLINE_MS = 10_000

/**
 * The last guard of a stop: if the process is still alive `deadline_ms` after a signal (something
 * left open keeps the event loop running), log what is open and which step of the stop waits, and exit 1. The
 * timer is unref'd: a stop that completes lets the process end without it.
 */
function exitIfStuck(step: () => string, log: Logger, deadline_ms: number): void {
  setTimeout(() => {
    log.error(
      { event: 'stop_overran', deadline_ms, step: step(), open: process.getActiveResourcesInfo() },
      `still running ${deadline_ms} ms after the signal: exiting`,
    )
    process.exit(1)
  }, deadline_ms).unref()
}

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
  traceThreadStalls('main', (record) => log.warn(record, 'stall'))
  await claimSocket(paths.socket) // before opening anything: one node per data directory
  const keyPair = await readIdentity(paths.identity)
  await mkdir(paths.dir, { recursive: true })
  const front_door_ports = await loadFrontDoorPorts(config)
  const driver = await createDriver(config, data_dir, log)
  const service_type = driver === null ? null : await serviceType(config)
  const replicas = driver === null ? null : await serviceReplicas(config)
  const node = new SustainNode({
    data_dir,
    config,
    keyPair,
    log,
    driver,
    front_door_ports,
    service_type,
    replicas,
  })
  const stopRecording = await recordTimeline(node, paths.timeline)
  let control = null as Server | null
  let metrics = null as Server | null
  let bootstrap_server = null as HyperDHT | null
  // What has started so far: a stop waits for it, so a signal in the middle of a start closes everything
  // the start opens (closing concurrently left the overlay started after close and the process alive).
  let starting: Promise<unknown> = Promise.resolve()
  /** Where the stop after node.close() is (exitIfStuck reports it). */
  let stop_step = 'starting'
  // Last words: a resign goes out (and is flushed, at most 200 ms) before the connections close.
  const removeLastWords = installLastWords({
    speak: (reason) => node.terminate(reason),
    stop: (signal) => {
      log.info({ event: 'signal', signal }, `stopping on ${signal}`)
      exitIfStuck(() => node.closing_step ?? stop_step, log, STOP_DEADLINE_MS)
      void starting.catch(() => {}).then(() => node.close())
    },
    fatal: (error, origin) => log.fatal({ err: error, origin }, 'uncaught error: resigning and exiting'),
  })
  try {
    starting = (async () => {
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
    })()
    await starting
    await node.exited
  } finally {
    removeLastWords()
    stop_step = 'node'
    await node.close()
    stop_step = 'timeline'
    await stopRecording()
    stop_step = 'bootstrap node'
    await bootstrap_server?.destroy()
    stop_step = 'control and metrics servers'
    for (const server of [control, metrics]) {
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()))
    }
    log.info({ event: 'node_stopped' }, 'node stopped')
  }
}

import { stat } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { stringify } from 'yaml'
import { writeFileAtomic } from '../../../lib/atomic-write.ts'
import { createLogger } from '../../../lib/log.ts'
import { defaultDataDir, nodePaths } from '../../config/data-dir.ts'
import { hostPortText } from '../../config/host-port.ts'
import { initNode } from '../../config/init-node.ts'
import { decodeInvite } from '../../config/invite.ts'
import { loadConfig, parseConfig } from '../../config/load.ts'
import type { SustainConfig } from '../../config/schema.ts'
import { servedBootstrap } from '../../runtime/dht-bootstrap.ts'
import { runNode } from '../../runtime/run.ts'
import { CliError } from '../../util/cli-error.ts'
import { pureJsFallbacks } from '../../util/fast-paths.ts'
import { missingSettings } from '../../util/process-settings.ts'
import { humanLogStream } from '../human-log.ts'

export interface JoinOptions {
  data?: string
  name?: string
  priority?: number
  service?: string
  port?: number
  bootstrap?: string
  json?: boolean
  metrics?: number
}

function parseBootstrap(text: string): string[] {
  return text.split(',').map((entry) => {
    const node = hostPortText(entry)
    if (node === null) throw new CliError(`--bootstrap wants host:port[,host:port...], got "${entry}"`)
    return node
  })
}

/** The config to run: from a token (initialising the data dir on first use) or from a config file. */
async function resolveConfig(
  target: string,
  options: JoinOptions,
): Promise<{ data: string; config: SustainConfig }> {
  if (target.startsWith('sustain1.')) {
    const invite = decodeInvite(target)
    const data = options.data ?? defaultDataDir()
    const paths = nodePaths(data)
    if ((await stat(paths.config).catch(() => null)) === null) {
      await initNode({
        data,
        name: options.name ?? `node-${Math.random().toString(16).slice(2, 6)}`,
        priority: options.priority ?? 100,
        federation: invite.name,
        invite: target,
      })
    }
    const config = await loadConfig(paths.config)
    if (config.federation.secret !== invite.secret) {
      throw new CliError(`${paths.config} belongs to another federation than this token; use another --data`)
    }
    return { data, config }
  }
  if ((await stat(target).catch(() => null)) === null) {
    throw new CliError(`"${target}" is neither an invite token (sustain1.…) nor a config file`)
  }
  return { data: options.data ?? dirname(resolve(target)), config: await loadConfig(target) }
}

/** `sustain join`: resolve the config, keep the command-line options in it, run the node until it stops. */
export async function runJoin(target: string, options: JoinOptions): Promise<void> {
  const { data, config } = await resolveConfig(target, options)
  // --bootstrap names the others; a node serving one keeps its own, which its invites carry.
  const self = servedBootstrap(config)
  const bootstrap = options.bootstrap
    ? [...new Set([...parseBootstrap(options.bootstrap), ...(self === null ? [] : [self])])]
    : config.federation.bootstrap
  const updated = parseConfig(
    {
      ...config,
      node: {
        ...config.node,
        name: options.name ?? config.node.name,
        priority: options.priority ?? config.node.priority,
      },
      federation: {
        ...config.federation,
        bootstrap,
      },
      service:
        options.service !== undefined
          ? { dir: resolve(options.service), port: options.port ?? config.service?.port ?? 2525 }
          : config.service && options.port !== undefined
            ? { ...config.service, port: options.port }
            : config.service,
    },
    'the config with the command-line options',
  )
  if (updated.federation.bootstrap.length === 0 && !updated.federation.public_dht) {
    throw new CliError(
      'no DHT bootstrap nodes: pass --bootstrap host:port, join with an invite of a node that serves one ' +
        '(`sustain init` of a new federation does: federation.serve_bootstrap_port), or set ' +
        'federation.public_dht: true for the public DHT',
    )
  }
  // Options given once are kept, so a restart with the same data dir runs the same node.
  await writeFileAtomic(nodePaths(data).config, stringify(updated), { mode: 0o600 })
  const log = createLogger({
    name: updated.node.name,
    level: updated.log.level,
    destination: options.json ? undefined : humanLogStream(),
  })
  for (const { fix, why } of missingSettings()) log.info(fix, `${why} (README, Running nodes)`)
  for (const { module, why, fix } of pureJsFallbacks()) log.info({ fallback: module, fix }, why)
  try {
    await runNode(data, updated, log, options.metrics !== undefined ? { metrics_port: options.metrics } : {})
  } catch (error) {
    const message = (error as Error).message
    if (/another node is running|could not be locked/i.test(message)) {
      throw new CliError(`data directory ${data} is in use by another node`)
    }
    throw new CliError(message)
  }
}

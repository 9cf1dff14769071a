import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { SustainConfig } from '../config/schema.ts'
import { forSnapshotTraffic } from '../util/process-settings.ts'

const BIN = fileURLToPath(new URL('../../bin/sustain.js', import.meta.url))

/** systemd's quoting for one word of ExecStart (paths with spaces). */
function word(text: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(text) ? text : `"${text.replace(/(["\\])/g, '\\$1')}"`
}

/** The unit's name for a node: sustain-NAME.service. */
export function unitName(config: SustainConfig): string {
  return `sustain-${config.node.name}.service`
}

/**
 * A systemd unit that runs `sustain join` for the node in `data_dir` with the process settings snapshot
 * traffic wants (src/util/process-settings.ts: heap flags, glibc malloc settings, the crc32c preload
 * when built), restarts it on failure, and stops it as a leave would not: SIGTERM to the node (which
 * closes its swarm and stops its service), then SIGKILL to what is left.
 */
export function systemdUnit(data_dir: string, config: SustainConfig, node_path = process.execPath): string {
  const config_path = join(resolve(data_dir), 'sustain.yaml')
  const settings = forSnapshotTraffic([], {})
  const environment = Object.entries(settings.env).map(([key, value]) => `Environment=${key}=${value}`)
  const exec = [node_path, ...settings.args, BIN, 'join', config_path].map(word).join(' ')
  return [
    '[Unit]',
    `Description=Sustain node ${config.node.name} (federation ${config.federation.name})`,
    'After=network-online.target',
    'Wants=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    ...environment,
    `WorkingDirectory=${word(resolve(data_dir))}`,
    `ExecStart=${exec}`,
    'KillMode=mixed',
    'TimeoutStopSec=30',
    'Restart=on-failure',
    'RestartSec=2',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n')
}

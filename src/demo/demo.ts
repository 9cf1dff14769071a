import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { nodePaths } from '../runtime/paths.ts'
import { LocalFederation, type LocalNode, type LogRecord } from './local-federation.ts'
import { MailLoop } from './mail-loop.ts'

export interface DemoOptions {
  nodes: number
  /** Zero-loss mode (config service.output_commit): k candidates, or off. Default 1, as the mail example. */
  output_commit?: number | 'off'
  /** Keep the data directories (logs, mailboxes) instead of removing them. */
  keep?: boolean
  dir?: string
  say?: (line: string) => void
  /** Milestones for a live view (`sustain demo` draws the UI from them). */
  onEvent?: (event: DemoEvent) => void
}

export type DemoEvent =
  /** The node processes run; `stop` ends them (for an interrupted demo). */
  | { kind: 'started'; dir: string; stop: () => Promise<void> }
  /** A node that survives the kill: watch its control socket. */
  | { kind: 'attach'; node: string; socket_path: string }
  /** The report is ready; the federation is torn down right after. */
  | { kind: 'finished'; summary: DemoSummary }

export interface DemoSummary {
  nodes: number
  killed: string
  new_server: string
  detect_ms: number | null
  failover_ms: number | null
  sent: number
  acknowledged: number
  /** The zero-loss setting the nodes ran with. */
  output_commit: number | 'off'
  /** Acknowledged mails missing from the new server's mailbox, as the client judges it against the mailbox. */
  lost_acknowledged: number
  /**
   * Output commit off: how many of the lost were acknowledged after the restored snapshot (loss the
   * snapshot interval allows). Null with output commit on: no loss is allowed, so none is excused.
   */
  lost_within_rpo: number | null
  restored_snapshot: string | null
  /** The front door the client sends to: the one address it knows (never told which node serves). */
  client_address: string
  /** Longest time the client went without an acknowledgement (ms). */
  client_outage_ms: number
  /** Connections the client saw refused or reset (a held one is not refused). */
  refused: number
  /** Transactions cut by the server's death, then retried by the client. */
  failed: number
  /** Longest a connection waited at the client's front door for a server (the node's own figure). */
  held_max_ms: number | null
  data_dir: string | null
}

function snapshotsTaken(node: LocalNode): number {
  return node.records.filter((r) => r.event === 'snapshot_taken').length
}

const isEvent =
  (event: string, after_ms: number) =>
  (r: LogRecord): boolean =>
    r.event === event && Number(r.time) >= after_ms

/**
 * The README's main job: a federation of node processes serving mail on loopback; mail flows; the
 * server is SIGKILLed (process group: node and service, as if the machine died); the federation
 * detects, elects, restores and answers again; then every mailbox is checked against what was
 * acknowledged.
 */
export async function runDemo(options: DemoOptions): Promise<DemoSummary> {
  const say = options.say ?? ((line: string) => process.stdout.write(`${line}\n`))
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'sustain-demo-')))
  const output_commit = options.output_commit ?? 1
  const federation = new LocalFederation({ dir, nodes: options.nodes, front_door: {}, output_commit })
  const release = federation.stopOnSignals()
  try {
    say(`starting a local DHT testnet and ${options.nodes} node processes in ${dir}`)
    await federation.start()
    options.onEvent?.({ kind: 'started', dir, stop: () => federation.stop() })
    const server = await federation.server(60_000)
    const watched = federation.nodes.find((n) => n !== server)!
    options.onEvent?.({ kind: 'attach', node: watched.name, socket_path: nodePaths(watched.data_dir).socket })
    // The client knows one address: the front door of the node started last. It is never told which
    // node serves; every node forwards to the server.
    const entry = federation.nodes.at(-1)!
    const door = entry.front_door!
    const client_address = `${door.host}:${door.port}`
    say(
      `${server.name} serves; the client sends mail to alice@example.org through ${entry.name}'s front door ${client_address}`,
    )
    const sender = new MailLoop(door.host, door.port, 'demo')
    const base = snapshotsTaken(server)
    await server.waitFor(() => snapshotsTaken(server) >= base + 3, 30_000, 'three snapshots while mail flows')
    say(
      `${sender.record.acked.size} mails acknowledged, ${snapshotsTaken(server)} snapshots taken and replicated`,
    )

    const killed_ms = Date.now()
    say(`SIGKILL ${server.name} (pid ${server.pid}) and its service`)
    server.signal('SIGKILL')
    const others = federation.nodes.filter((n) => n !== server)
    const { record: detected } = await LocalFederation.first(
      others,
      isEvent('server_suspected', killed_ms),
      30_000,
      'detection',
    )
    const detect_ms = Number(detected.time) - killed_ms
    say(`detected after ${detect_ms} ms (${detected.reason ?? 'suspected'})`)
    const { node: successor, record: elected } = await LocalFederation.first(
      others,
      isEvent('elected', killed_ms),
      30_000,
      'election',
    )
    say(
      `${successor.name} elected at +${Number(elected.time) - killed_ms} ms, restoring ${elected.snapshot ?? 'nothing'}`,
    )
    const restored = await successor.waitFor(isEvent('restored', killed_ms), 60_000, 'restore')
    const answering = await successor.waitFor(
      isEvent('service_answering', killed_ms),
      60_000,
      'service answering',
    )
    say(
      `restored at +${Number(restored.time) - killed_ms} ms; service answering at +${Number(answering.time) - killed_ms} ms`,
    )

    const deadline = Date.now() + 30_000
    // Acknowledgements that reach the client before the new server answers come from the old one: its
    // answers already on their way (in a relaying node's buffers) when it died.
    const answering_ms = Number(answering.time)
    const ackedAfterKill = () => [...sender.record.acked.values()].filter((at) => at > answering_ms)
    while (ackedAfterKill().length < 20 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    const seen = await sender.stop()
    const entry_status = entry.running ? await entry.status() : null
    const first_after = Math.min(...ackedAfterKill())
    const mailbox = await successor.mailbox('alice')
    const present = new Set([...mailbox.matchAll(/^Subject: demo-(\d+)$/gm)].map((m) => Number(m[1])))
    const snapshot_time_ms = Number(restored.snapshot_time_ms ?? 0)
    const lost = [...seen.acked].filter(([n]) => !present.has(n))
    // Only without output commit does the restored snapshot excuse anything.
    const lost_within_rpo =
      output_commit === 'off'
        ? lost.filter(([, at]) => at >= snapshot_time_ms && at <= answering_ms).length
        : null
    const summary: DemoSummary = {
      nodes: options.nodes,
      killed: server.name,
      new_server: successor.name,
      detect_ms,
      failover_ms: Number.isFinite(first_after) ? first_after - killed_ms : null,
      sent: seen.sent,
      acknowledged: seen.acked.size,
      output_commit,
      lost_acknowledged: lost.length,
      lost_within_rpo,
      restored_snapshot: (restored.snapshot as string | null) ?? null,
      client_address,
      client_outage_ms: seen.outage_ms,
      refused: seen.refused,
      failed: seen.failed,
      held_max_ms: entry_status?.front_door?.held_max_ms ?? null,
      data_dir: options.keep ? dir : null,
    }
    say(
      `${summary.acknowledged} acknowledged, ${present.size} in the mailbox on ${successor.name}; ` +
        (summary.lost_within_rpo === null
          ? `${summary.lost_acknowledged} lost (output commit k=${output_commit}: an answer reaches the client only ` +
            `once a snapshot holding its cause is on ${output_commit} candidate${output_commit === 1 ? '' : 's'})`
          : `${summary.lost_acknowledged} lost, of which ${summary.lost_within_rpo} were acknowledged after the ` +
            'newest replicated snapshot (the recovery point; output commit is off)') +
        `; failover ${summary.failover_ms} ms`,
    )
    say(
      `the client went ${summary.client_outage_ms} ms without an acknowledgement; ${summary.refused} connections ` +
        `refused, ${summary.failed} cut by the kill and retried; longest hold at its front door ${summary.held_max_ms} ms`,
    )
    const unexcused = summary.lost_acknowledged - (summary.lost_within_rpo ?? 0)
    if (unexcused > 0) {
      say(
        summary.lost_within_rpo === null
          ? `ERROR: ${unexcused} acknowledged mails were lost with output commit on`
          : `WARNING: ${unexcused} acknowledged mails were lost outside the recovery point`,
      )
    }
    options.onEvent?.({ kind: 'finished', summary })
    return summary
  } finally {
    release()
    await federation.stop()
    if (!options.keep) await rm(dir, { recursive: true, force: true })
  }
}

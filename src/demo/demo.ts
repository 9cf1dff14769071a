import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sendMail } from '../../examples/mail/smtp-client.ts'
import { nodePaths } from '../runtime/paths.ts'
import { LocalFederation, type LocalNode, type LogRecord } from './local-federation.ts'

export interface DemoOptions {
  nodes: number
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
  lost_acknowledged: number
  lost_within_rpo: number
  restored_snapshot: string | null
  data_dir: string | null
}

/** Sends numbered mails to whichever node serves, recording when each was acknowledged (250 to DATA). */
class MailSender {
  readonly acked = new Map<number, number>()
  sent = 0
  private stopping = false
  private target: LocalNode | null = null
  private loop: Promise<void> | null = null

  constructor(private readonly federation: LocalFederation) {}

  start(first: LocalNode): void {
    this.target = first
    this.loop = this.run()
  }

  private async run(): Promise<void> {
    for (let n = 1; !this.stopping && n <= 100_000; n++) {
      this.sent = n
      for (let attempt = 0; !this.stopping && attempt < 600; attempt++) {
        const target = this.target
        try {
          if (!target?.running) throw new Error('no server')
          await sendMail({
            port: target.port,
            from: 'demo@example.org',
            to: ['alice@example.org'],
            subject: `demo-${n}`,
            text: `message ${n} of the Sustain demo\n`,
          })
          this.acked.set(n, Date.now())
          break
        } catch {
          // The server is gone or not answering yet: find the one that serves now, then retry.
          this.target = await this.federation.server(2000).catch(() => null)
          if (!this.target) await new Promise((resolve) => setTimeout(resolve, 100))
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }

  async stop(): Promise<void> {
    this.stopping = true
    await this.loop
  }

  ackedAfter(time_ms: number): number[] {
    return [...this.acked].filter(([, at]) => at > time_ms).map(([n]) => n)
  }
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
  const federation = new LocalFederation({ dir, nodes: options.nodes })
  const release = federation.stopOnSignals()
  try {
    say(`starting a local DHT testnet and ${options.nodes} node processes in ${dir}`)
    await federation.start()
    options.onEvent?.({ kind: 'started', dir, stop: () => federation.stop() })
    const server = await federation.server(60_000)
    const watched = federation.nodes.find((n) => n !== server)!
    options.onEvent?.({ kind: 'attach', node: watched.name, socket_path: nodePaths(watched.data_dir).socket })
    say(`${server.name} serves mail on 127.0.0.1:${server.port}; sending mail to alice@example.org`)
    const sender = new MailSender(federation)
    sender.start(server)
    const base = snapshotsTaken(server)
    await server.waitFor(() => snapshotsTaken(server) >= base + 3, 30_000, 'three snapshots while mail flows')
    say(`${sender.acked.size} mails acknowledged, ${snapshotsTaken(server)} snapshots taken and replicated`)

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
    while (sender.ackedAfter(killed_ms).length < 20 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    await sender.stop()
    const first_after = Math.min(...[...sender.acked.values()].filter((at) => at > killed_ms))
    const mailbox = await successor.mailbox('alice')
    const present = new Set([...mailbox.matchAll(/^Subject: demo-(\d+)$/gm)].map((m) => Number(m[1])))
    const snapshot_time_ms = Number(restored.snapshot_time_ms ?? 0)
    const lost = [...sender.acked].filter(([n]) => !present.has(n))
    const lost_within_rpo = lost.filter(([, at]) => at >= snapshot_time_ms && at <= killed_ms).length
    const summary: DemoSummary = {
      nodes: options.nodes,
      killed: server.name,
      new_server: successor.name,
      detect_ms,
      failover_ms: Number.isFinite(first_after) ? first_after - killed_ms : null,
      sent: sender.sent,
      acknowledged: sender.acked.size,
      lost_acknowledged: lost.length,
      lost_within_rpo,
      restored_snapshot: (restored.snapshot as string | null) ?? null,
      data_dir: options.keep ? dir : null,
    }
    say(
      `${summary.acknowledged} acknowledged, ${present.size} in the mailbox on ${successor.name}; ` +
        `${summary.lost_acknowledged} lost, of which ${summary.lost_within_rpo} were acknowledged after the ` +
        `newest replicated snapshot (the recovery point); failover ${summary.failover_ms} ms`,
    )
    if (summary.lost_acknowledged !== summary.lost_within_rpo) {
      say(
        `WARNING: ${summary.lost_acknowledged - summary.lost_within_rpo} acknowledged mails were lost outside the recovery point`,
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

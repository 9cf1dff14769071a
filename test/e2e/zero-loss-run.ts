import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { sendMail } from '../../examples/mail/smtp-client.ts'
import {
  LocalFederation,
  type LocalFederationOptions,
  type LocalNode,
} from '../../src/demo/local-federation.ts'
import { leaveCli } from './leave-run.ts'

/** What the client saw and what the mailbox holds after every fault of one run. */
export interface ZeroLossOutcome {
  attempted: number
  acked: number
  /** The numbers acknowledged (250 after DATA). */
  acked_numbers: number[]
  /** The final server's mbox (still there until the federation is stopped). */
  mailbox_path: string
  /** Acknowledged but not in the final server's mailbox. */
  lost: number[]
  /** In the mailbox more than once (acknowledged or not). */
  duplicated: number[]
  /** Connect-to-250 of every acknowledged mail (ms). */
  latency_ms: number[]
  /**
   * Per fault: the random delay it struck after, and whether a snapshot was between its capture and its
   * store then (the server's last record was its capture pause, not yet `snapshot_taken`).
   */
  faults: { kind: ZeroLossFault; delay_ms: number; mid_snapshot: boolean }[]
  /** Exit code and output of each `sustain leave` (fault kind 'leave'), in order. */
  leaves: { code: number; output: string }[]
  /** Before the first fault, from the first acknowledgement: what the server did under this load. */
  steady: { seconds: number; acked: number; snapshots: number; delta_bytes: number; latency_ms: number[] }
}

/** A signal to the serving node's process group, or a planned `sustain leave` of the server. */
export type ZeroLossFault = 'SIGKILL' | 'SIGSTOP' | 'leave'

export interface ZeroLossOptions {
  faults: ZeroLossFault[]
  seed: number
  /** Default 1. */
  output_commit?: number | 'off'
  /** Default: one more than the faults plus k (every new server still has k candidates). */
  nodes?: number
  /** Mail flows at least this long before the first fault (default 0: 5 acknowledgements). */
  steady_ms?: number
  /** A file of this size is put in the first server's state directory (a big service state). */
  ballast_bytes?: number
}

/**
 * A client that knows one front door and sends numbered mails one after another; every attempt is a new
 * number, so a mail whose acknowledgement was cut is never counted twice. Shares no code with the front
 * door or the snapshot path: what it counts as acknowledged is what its SMTP client got a 250 for.
 */
export class Client {
  readonly acked = new Set<number>()
  /** When each acknowledgement came (Date.now()), in order. */
  readonly acked_at: number[] = []
  readonly latency_ms: number[] = []
  attempted = 0
  private stopping = false
  private readonly loop: Promise<void>

  constructor(
    private readonly host: string,
    private readonly port: number,
  ) {
    this.loop = this.run()
  }

  private async run(): Promise<void> {
    while (!this.stopping && this.attempted < 100_000) {
      const n = ++this.attempted
      const started = performance.now()
      try {
        await sendMail({
          host: this.host,
          port: this.port,
          from: 'client@example.org',
          to: ['alice@example.org'],
          subject: `zl-${n}`,
          text: `mail ${n}\n`,
          timeout_ms: 5000,
        })
        this.acked.add(n)
        this.acked_at.push(Date.now())
        this.latency_ms.push(performance.now() - started)
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 50)) // a refused or cut attempt: try the next number
      }
    }
  }

  /** Resolves once `count` more mails than now are acknowledged (bounded). */
  async more(count: number, timeout_ms: number): Promise<void> {
    const want = this.acked.size + count
    const deadline = Date.now() + timeout_ms
    while (this.acked.size < want) {
      if (Date.now() > deadline) throw new Error(`fewer than ${count} mails acknowledged in ${timeout_ms} ms`)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }

  async stop(): Promise<void> {
    this.stopping = true
    await this.loop
  }
}

/** How many times each `zl-N` subject is in an mbox file, read directly (no Sustain code). */
export async function mailboxCounts(path: string): Promise<Map<number, number>> {
  const text = await readFile(path, 'utf8').catch(() => '')
  const counts = new Map<number, number>()
  for (const m of text.matchAll(/^Subject: zl-(\d+)$/gm))
    counts.set(Number(m[1]), (counts.get(Number(m[1])) ?? 0) + 1)
  return counts
}

/** A server other than `not`, as the nodes report it. */
async function newServer(fed: LocalFederation, not: Set<LocalNode>, timeout_ms: number): Promise<LocalNode> {
  const deadline = Date.now() + timeout_ms
  while (Date.now() < deadline) {
    const server = await fed.server(Math.max(1, deadline - Date.now()))
    if (!not.has(server)) return server
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`no new server within ${timeout_ms} ms`)
}

/** A small deterministic generator, so a failing run's fault moments can be replayed from its seed. */
function lcg(seed: number): () => number {
  // Scrambled first (murmur3's finaliser): consecutive seeds must not give nearly equal first draws.
  let state = seed >>> 0
  state = Math.imul(state ^ (state >>> 16), 0x85eb_ca6b) >>> 0
  state = Math.imul(state ^ (state >>> 13), 0xc2b2_ae35) >>> 0
  state = (state ^ (state >>> 16)) >>> 0 || 1
  return () => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0
    return state / 2 ** 32
  }
}

/**
 * One run: a federation with output commit (k=1 unless told), mail flowing through the front door of
 * the node that is never faulted (the lowest priority), and each fault in turn struck at the serving
 * node at a random moment (0-1500 ms after at least 5 more acknowledgements). After each failover 5
 * more mails must be acknowledged. Then the final server's mailbox is read: every acknowledged mail
 * must be there once.
 */
export async function zeroLossRun(
  start: (options: Omit<LocalFederationOptions, 'dir'>) => Promise<LocalFederation>,
  options: ZeroLossOptions,
): Promise<ZeroLossOutcome> {
  const { faults } = options
  const random = lcg(options.seed)
  const output_commit = options.output_commit ?? 1
  const fed = await start({
    nodes: options.nodes ?? faults.length + 1 + (output_commit === 'off' ? 1 : output_commit),
    snapshot_interval_ms: 1000,
    front_door: {},
    output_commit,
  })
  let server = await fed.server(60_000)
  // Mail starts once every candidate holds a snapshot with it (the big state replicated once).
  if (options.ballast_bytes) await placeBallast(fed, server, options.ballast_bytes)
  const door = fed.nodes.at(-1)!.front_door!
  const client = new Client(door.host, door.port)
  const faulted = new Set<LocalNode>()
  const struck: ZeroLossOutcome['faults'] = []
  const leaves: ZeroLossOutcome['leaves'] = []
  let steady: ZeroLossOutcome['steady'] = {
    seconds: 0,
    acked: 0,
    snapshots: 0,
    delta_bytes: 0,
    latency_ms: [],
  }
  try {
    for (const kind of faults) {
      await client.more(5, 60_000)
      if (struck.length === 0) {
        if (options.steady_ms) await new Promise((resolve) => setTimeout(resolve, options.steady_ms))
        const from_ms = client.acked_at[0]!
        const to_ms = Date.now()
        const taken = server.records.filter(
          (r) => r.event === 'snapshot_taken' && Number(r.time) >= from_ms && Number(r.time) <= to_ms,
        )
        const acked = client.acked_at.filter((t) => t <= to_ms).length
        steady = {
          seconds: (to_ms - from_ms) / 1000,
          acked,
          latency_ms: client.latency_ms.slice(0, acked),
          snapshots: taken.length,
          delta_bytes: taken.reduce((sum, r) => sum + Number(r.delta_bytes ?? 0), 0),
        }
      }
      const delay_ms = Math.floor(random() * 1500)
      await new Promise((resolve) => setTimeout(resolve, delay_ms))
      const last = server.records.findLast(
        (r) => r.event === 'snapshot_taken' || r.event === 'service_paused',
      )
      struck.push({ kind, delay_ms, mid_snapshot: last?.event === 'service_paused' })
      // A leave hands over while mail flows: the CLI returns once a successor was named (or failed).
      const leaving = kind === 'leave' ? leaveCli(server) : null
      if (kind !== 'leave') server.signal(kind)
      faulted.add(server)
      server = await newServer(fed, faulted, 60_000)
      if (leaving) leaves.push(await leaving)
      await client.more(5, 60_000)
    }
    // A frozen server comes back: two servers meet, and one merges what it holds into the other (by
    // priority: the resumed one usually wins; the mail helper appends by Message-ID), so an answer either
    // gave is kept.
    if (struck.some((f) => f.kind === 'SIGSTOP')) {
      const resumed_ms = Date.now()
      for (const node of faulted) node.signal('SIGCONT')
      await LocalFederation.first(
        fed.nodes,
        (r) => r.event === 'merge_finished' && Number(r.time) >= resumed_ms,
        90_000,
        'the merge after the frozen server came back',
      )
      server = await fed.server(60_000)
      await client.more(3, 60_000)
    }
  } finally {
    await client.stop()
  }
  const mailbox_path = join(server.data_dir, 'service', 'state', 'mail', 'alice')
  const counts = await mailboxCounts(mailbox_path)
  return {
    attempted: client.attempted,
    acked: client.acked.size,
    acked_numbers: [...client.acked].sort((a, b) => a - b),
    mailbox_path,
    lost: [...client.acked].filter((n) => (counts.get(n) ?? 0) === 0),
    duplicated: [...counts].filter(([, c]) => c > 1).map(([n]) => n),
    latency_ms: client.latency_ms,
    faults: struck,
    leaves,
    steady,
  }
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

/** Writes `bytes` of random ballast into the server's state; resolves once every other node stored a snapshot holding it. */
export async function placeBallast(fed: LocalFederation, server: LocalNode, bytes: number): Promise<void> {
  const written_ms = Date.now()
  await writeFile(join(server.data_dir, 'service', 'state', 'ballast.bin'), randomBytes(bytes))
  const taken = await server.waitFor(
    (r) => r.event === 'snapshot_taken' && Number(r.time) - Number(r.total_ms) >= written_ms,
    120_000,
    'a snapshot holding the ballast',
  )
  await Promise.all(
    fed.nodes
      .filter((n) => n !== server)
      .map((n) =>
        n.waitFor((r) => r.event === 'snapshot_collected' && r.id === taken.id, 180_000, 'ballast'),
      ),
  )
}

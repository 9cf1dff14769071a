import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type {
  LocalFederation,
  LocalFederationOptions,
  LocalNode,
  LogRecord,
} from '../../src/demo/local-federation.ts'
import type { MailLoad } from '../../src/demo/mail-load.ts'
import { nodePaths } from '../../src/runtime/paths.ts'

const run = promisify(execFile)
const BIN = new URL('../../bin/sustain.js', import.meta.url).pathname

export interface LeaveResult {
  leaver: string
  successor: string
  exit_code: number
  output: string
  /** Longest time the load client went without an acknowledgement, from the leave to the CLI's exit. */
  gap_ms: number
  /** Nodes that claimed the service (`elected`) between the leaver's `leave_requested` and the end. */
  claims: string[]
  /** Mails acknowledged after the leave's CLI returned (the client got through to the successor). */
  acked_after: number
  /** Wall-clock window of the leave (from the CLI's start to the successor's first acknowledgement). */
  from_ms: number
  to_ms: number
}

/** Core events worth reading when a leave goes wrong (not the snapshot and load chatter). */
const STORY = new Set([
  'node_started',
  'role_changed',
  'elected',
  'claim_refused',
  'server_suspected',
  'peer_down',
  'leave_requested',
  'handover_started',
  'handover_finished',
  'merge_started',
  'merge_finished',
  'merge_failed',
  'restore_failed',
  'restored',
  'service_answering',
])

/** Every node's story in [from_ms, to_ms], in time order, one line each: what to read when a leave failed. */
export function storyBetween(fed: LocalFederation, from_ms: number, to_ms: number): string {
  const lines = fed.nodes.flatMap((n) =>
    n.records
      .filter((r) => STORY.has(String(r.event)) && recordTime(r) >= from_ms && recordTime(r) <= to_ms)
      .map((r) => {
        const { level, time, mono_ms, pid, hostname, name, msg, event, ...rest } = r
        return { t: recordTime(r), line: `${n.name} ${String(event)} ${JSON.stringify(rest).slice(0, 240)}` }
      }),
  )
  return lines
    .sort((a, b) => a.t - b.t)
    .map((l) => `  +${l.t - from_ms} ms ${l.line}`)
    .join('\n')
}

/** `sustain leave` on `node`; resolves with its exit code and output, never throws. */
export async function leaveCli(node: LocalNode): Promise<{ code: number; output: string }> {
  return run(process.execPath, [BIN, 'leave', '--data', node.data_dir], { timeout: 120_000 }).then(
    ({ stdout }) => ({ code: 0, output: stdout }),
    (error: { code?: number; stdout?: string; stderr?: string }) => ({
      code: typeof error.code === 'number' ? error.code : -1,
      output: `${error.stdout ?? ''}${error.stderr ?? ''}`,
    }),
  )
}

export type StartFederation = (options: Omit<LocalFederationOptions, 'dir'>) => Promise<LocalFederation>

const recordTime = (r: LogRecord) => Number(r.time)

/** Who claimed (the `elected` stage) in [from_ms, to_ms], from every node's log, in time order. */
export function claimsBetween(fed: LocalFederation, from_ms: number, to_ms: number): string[] {
  return fed.nodes
    .flatMap((n) =>
      n.records
        .filter((r) => r.event === 'elected' && recordTime(r) >= from_ms && recordTime(r) <= to_ms)
        .map((r) => ({ name: n.name, t: recordTime(r) })),
    )
    .sort((a, b) => a.t - b.t)
    .map((c) => c.name)
}

/**
 * The server leaves under load and, once its successor serves, the leaver starts again (it rejoins as a
 * candidate): the client's longest gap, the CLI's exit code and who claimed in between.
 */
export async function leaveAndRejoin(fed: LocalFederation, load: MailLoad): Promise<LeaveResult> {
  const server = await fed.server(60_000)
  const started_ms = Date.now()
  const { code, output } = await leaveCli(server)
  const ended_ms = Date.now()
  await server.waitExit(30_000)
  const successor = await fed.server(60_000)
  // The client's gap closes at its first acknowledgement after the leave ended.
  const acked_before = load.acked.size
  for (let i = 0; i < 400 && load.acked.size === acked_before; i++) await sleep(25)
  const gap_ms = load.longestGap(started_ms, ended_ms)
  const acked_after = [...load.acked.values()].filter((t) => t >= ended_ms).length
  // The leave starts when the node takes the request: the CLI's own start-up can take seconds on a loaded
  // machine, and a detector's false suspicion of the server then (a claim everyone refuses) is no part of it.
  const requested = server.records.find((r) => r.event === 'leave_requested' && recordTime(r) >= started_ms)
  const claims = claimsBetween(fed, requested ? recordTime(requested) : started_ms, Date.now())
  const restarted_ms = Date.now()
  server.start()
  await server.waitFor((r) => r.event === 'node_started' && recordTime(r) >= restarted_ms, 60_000, 'rejoin')
  // Back in: it holds the newest snapshot of its successor before the next leave.
  await server.waitFor(
    (r) => r.event === 'snapshot_collected' && recordTime(r) >= restarted_ms,
    60_000,
    'a replicated snapshot after the rejoin',
  )
  return {
    leaver: server.name,
    successor: successor.name,
    exit_code: code,
    output,
    gap_ms,
    claims,
    acked_after,
    from_ms: started_ms,
    to_ms: restarted_ms,
  }
}

/**
 * Intervals in which each node said it was the server (role_changed records), ending at its next role
 * change, its exit, or `end_ms`. Two nodes' intervals must never overlap (those ending before `since_ms`
 * are not looked at).
 */
export function serverOverlaps(
  fed: LocalFederation,
  end_ms: number,
  killed: Map<LocalNode, number[]> = new Map(),
  since_ms = 0,
): string[] {
  const intervals: Array<{ node: string; from: number; to: number }> = []
  for (const node of fed.nodes) {
    let from: number | null = null
    const kills = [...(killed.get(node) ?? [])]
    for (const r of node.records) {
      const t = recordTime(r)
      // A SIGKILL leaves no record: the interval ends at the kill.
      while (from !== null && kills.length > 0 && kills[0]! <= t) {
        intervals.push({ node: node.name, from, to: kills.shift()! })
        from = null
      }
      if (r.event === 'node_started' && from !== null) {
        intervals.push({ node: node.name, from, to: t })
        from = null
      }
      if (r.event !== 'role_changed') continue
      if (r.to === 'server' && from === null) from = t
      else if (r.from === 'server' && from !== null) {
        intervals.push({ node: node.name, from, to: t })
        from = null
      }
    }
    if (from !== null) intervals.push({ node: node.name, from, to: kills[0] ?? end_ms })
  }
  const overlaps: string[] = []
  const recent = intervals.filter((i) => i.to >= since_ms)
  for (const a of recent)
    for (const b of recent)
      if (a.node < b.node && a.from < b.to && b.from < a.to)
        overlaps.push(`${a.node} [${a.from}, ${a.to}] and ${b.node} [${b.from}, ${b.to}]`)
  return overlaps
}

/**
 * Acknowledged mails missing from `node`'s mailbox. The mbox is read here with a pattern of its own (each
 * message's `Subject:` header line), not with Sustain's parser; a mailbox that does not exist holds nothing.
 */
export async function lostAcknowledged(node: LocalNode, load: MailLoad, prefix = 'load'): Promise<number[]> {
  const path = join(nodePaths(node.data_dir).service_state, 'mail', 'alice')
  const mbox = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return ''
    throw error
  })
  const present = new Set(
    [...mbox.matchAll(new RegExp(`^Subject: ${prefix}-(\\d+)$`, 'gm'))].map((m) => Number(m[1])),
  )
  return load.ackedNumbers().filter((n) => !present.has(n))
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}

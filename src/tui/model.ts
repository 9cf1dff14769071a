import type { NodeNotice } from '../runtime/node.ts'
import type { NodeStatus } from '../runtime/status.ts'
import { formatBytes, formatDuration, shortKey, shortSnapshot } from './format.ts'

/**
 * The UI's state and the one pure function that advances it. Everything the screen shows comes from
 * this state, so component tests replay a recorded stream of inputs with chosen times and assert text.
 * Notices carry no time: the UI stamps them on arrival (a local socket, so within milliseconds).
 */
export type UiInput =
  | { type: 'connected' }
  | { type: 'lost'; reason: string }
  | { type: 'status'; status: NodeStatus }
  | { type: 'notice'; notice: NodeNotice }
  /** The UI's own lines: command results and errors. */
  | { type: 'note'; text: string; tone: Tone }
  /** Narration of `sustain demo`. */
  | { type: 'demo'; line: string }
  /** Time passes with no news: ages on screen grow, finished transfers go. */
  | { type: 'tick' }

export type Tone = 'fault' | 'warn' | 'good' | 'info'

export interface TimelineEntry {
  seq: number
  at_ms: number
  text: string
  tone: Tone
  /** Measured from the stage that started it (suspicion, hand-over start, merge start), e.g. "+812 ms". */
  duration: string | null
  /** Consecutive entries of one coalescing kind are folded into one with a count. */
  kind: string | null
  count: number
}

export interface Transfer {
  what: 'restore' | 'replicate'
  id: string
  bytes_done: number
  bytes_total: number
  started_ms: number
  first_bytes: number
  updated_ms: number
  done_ms: number | null
}

/** When a peer last became reachable or unreachable; `known` is false when it already was at first sight. */
export interface Reach {
  reachable: boolean
  since_ms: number
  known: boolean
}

export interface UiState {
  now_ms: number
  connection: { state: 'connecting' | 'connected' | 'lost'; since_ms: number; reason: string | null }
  ever_connected: boolean
  status: NodeStatus | null
  /** The next status starts afresh (after a (re)connection): a restarted node knows no peers yet. */
  baseline: boolean
  reach: Record<string, Reach>
  timeline: TimelineEntry[]
  next_seq: number
  transfers: Transfer[]
  /** Start of the failover in progress (server suspected or lost), for the durations of its stages. */
  fault_ms: number | null
  handover_ms: number | null
  merge_ms: number | null
  demo: string[]
}

export const MAX_TIMELINE = 200
export const MAX_DEMO_LINES = 50
/** A finished transfer stays on screen this long so people see it complete. */
export const TRANSFER_LINGER_MS = 3000
export const MAX_TRANSFERS = 4

export function initialState(now_ms: number): UiState {
  return {
    now_ms,
    connection: { state: 'connecting', since_ms: now_ms, reason: null },
    ever_connected: false,
    status: null,
    baseline: true,
    reach: {},
    timeline: [],
    next_seq: 1,
    transfers: [],
    fault_ms: null,
    handover_ms: null,
    merge_ms: null,
    demo: [],
  }
}

/** Names people recognise for node keys, from the newest status. */
export function nameOf(status: NodeStatus | null, key: unknown): string {
  if (typeof key !== 'string') return String(key ?? '?')
  if (status?.node.key === key) return status.node.name
  return status?.peers.find((p) => p.key === key)?.name ?? shortKey(key)
}

type Draft = UiState

function add(
  s: Draft,
  text: string,
  tone: Tone,
  duration: string | null = null,
  kind: string | null = null,
): void {
  const last = s.timeline.at(-1)
  if (kind !== null && last?.kind === kind) {
    s.timeline = [...s.timeline.slice(0, -1), { ...last, at_ms: s.now_ms, text, count: last.count + 1 }]
    return
  }
  const entry: TimelineEntry = { seq: s.next_seq++, at_ms: s.now_ms, text, tone, duration, kind, count: 1 }
  s.timeline = [...s.timeline, entry].slice(-MAX_TIMELINE)
}

function since(start_ms: number | null, now_ms: number): string | null {
  return start_ms === null ? null : `+${formatDuration(now_ms - start_ms)}`
}

export function reduce(state: UiState, input: UiInput, now_ms: number): UiState {
  const s: Draft = { ...state, now_ms: Math.max(state.now_ms, now_ms) }
  switch (input.type) {
    case 'connected':
      if (s.ever_connected && s.connection.state === 'lost') {
        add(
          s,
          `reconnected to the local node (down ${formatDuration(s.now_ms - s.connection.since_ms)})`,
          'good',
        )
      } else if (!s.ever_connected) add(s, 'connected to the local node', 'info')
      s.connection = { state: 'connected', since_ms: s.now_ms, reason: null }
      s.ever_connected = true
      s.baseline = true
      break
    case 'lost':
      if (s.connection.state === 'connected') {
        add(s, `lost the local node (${input.reason}); reconnecting`, 'fault')
        s.connection = { state: 'lost', since_ms: s.now_ms, reason: input.reason }
      } else s.connection = { ...s.connection, reason: input.reason }
      break
    case 'status':
      applyStatus(s, input.status)
      break
    case 'notice':
      applyNotice(s, input.notice)
      break
    case 'note':
      add(s, input.text, input.tone)
      break
    case 'demo':
      s.demo = [...s.demo, input.line].slice(-MAX_DEMO_LINES)
      break
    case 'tick':
      break
  }
  s.transfers = pruneTransfers(s.transfers, s.now_ms)
  return s
}

function applyStatus(s: Draft, status: NodeStatus): void {
  const before = s.baseline ? null : s.status
  s.baseline = false
  const reach = { ...s.reach }
  for (const peer of status.peers) {
    const name = peer.name ?? shortKey(peer.key)
    const old = before?.peers.find((p) => p.key === peer.key)
    const went_silent_ms = s.now_ms - peer.last_heard_ms_ago
    const tracked = reach[peer.key]
    if (!tracked) {
      reach[peer.key] = peer.reachable
        ? { reachable: true, since_ms: s.now_ms, known: false }
        : { reachable: false, since_ms: went_silent_ms, known: true }
    } else if (tracked.reachable !== peer.reachable) {
      reach[peer.key] = {
        reachable: peer.reachable,
        since_ms: peer.reachable ? s.now_ms : went_silent_ms,
        known: true,
      }
    }
    if (before === null) continue
    if (!old) {
      add(s, `${name} joined (priority ${peer.priority})`, 'info')
      continue
    }
    if (old.reachable && !peer.reachable) {
      if (old.role === 'server' && s.fault_ms === null) s.fault_ms = went_silent_ms
      add(s, `${name} unreachable (last heard ${formatDuration(peer.last_heard_ms_ago)} ago)`, 'fault')
    } else if (!old.reachable && peer.reachable) add(s, `${name} reachable again`, 'good')
    if (old.role !== peer.role) {
      if (peer.role === 'server')
        add(s, `${name} serves (term ${peer.term})`, 'good', since(s.fault_ms, s.now_ms))
      else if (peer.role === 'leaving') add(s, `${name} is leaving`, 'warn')
      else if (peer.role === 'restoring' || peer.role === 'merging')
        add(s, `${name} ${peer.role} (term ${peer.term})`, 'info', since(s.fault_ms, s.now_ms))
    }
    const answering = peer.role === 'server' && peer.health === 'ok'
    if (answering && !(old.role === 'server' && old.health === 'ok')) {
      add(s, `${name}: service answering`, 'good', since(s.fault_ms, s.now_ms))
      s.fault_ms = null
    }
  }
  const point = status.recovery_point
  if (before !== null && point.stuck !== before.recovery_point.stuck) {
    if (point.stuck)
      add(
        s,
        point.age_ms === null
          ? 'recovery point stuck: no snapshot has reached a candidate'
          : `recovery point stuck: newest replicated snapshot is ${formatDuration(point.age_ms)} old`,
        'fault',
      )
    else add(s, 'recovery point moves again', 'good')
  }
  if (before !== null) {
    for (const old of before.peers) {
      if (!status.peers.some((p) => p.key === old.key))
        add(s, `${old.name ?? shortKey(old.key)} left`, 'info')
    }
  }
  s.reach = reach
  s.status = status
}

function field(fields: Record<string, unknown>, key: string): string {
  const value = fields[key]
  return value === null || value === undefined ? '-' : String(value)
}

/** " (1.2 MB)" when the runtime put a size on the stage (merges, collects); nothing otherwise. */
function size(fields: Record<string, unknown>): string {
  const bytes = fields.bytes ?? fields.size_bytes
  return typeof bytes === 'number' ? ` (${formatBytes(bytes)})` : ''
}

function applyNotice(s: Draft, notice: NodeNotice): void {
  if (notice.kind === 'exit') {
    add(s, 'the local node stopped', 'fault')
    return
  }
  if (notice.kind === 'progress') {
    applyProgress(s, notice)
    return
  }
  const f = notice.fields
  const who = (key: string) => nameOf(s.status, f[key])
  switch (notice.name) {
    case 'role_changed':
      add(
        s,
        `role ${field(f, 'from')} → ${field(f, 'to')} (term ${notice.term})`,
        f.to === 'server' ? 'good' : 'info',
      )
      return
    case 'server_suspected':
      s.fault_ms ??= s.now_ms
      add(s, `server ${who('server')} suspected (${field(f, 'reason')})`, 'fault')
      return
    case 'fault_seen':
      s.fault_ms ??= s.now_ms
      add(
        s,
        `fault seen: ${field(f, 'stage')} ${field(f, 'kind') !== '-' ? field(f, 'kind') : field(f, 'reason')}`,
        'fault',
      )
      return
    case 'elected':
      add(
        s,
        `elected at term ${notice.term}, restoring ${shortSnapshot((f.snapshot as string) ?? null)}`,
        'good',
        since(s.fault_ms, s.now_ms),
      )
      return
    case 'claim_refused':
      add(s, `claim refused: ${field(f, 'reason')}`, 'warn', since(s.fault_ms, s.now_ms))
      return
    case 'snapshot_collected':
      add(
        s,
        `collected ${shortSnapshot((f.id as string) ?? null)}${size(f)}`,
        'info',
        since(s.fault_ms, s.now_ms),
      )
      return
    case 'restored':
      add(s, `restored ${shortSnapshot((f.snapshot as string) ?? null)}`, 'good', since(s.fault_ms, s.now_ms))
      return
    case 'service_answering':
      add(s, 'service answering', 'good', since(s.fault_ms, s.now_ms))
      s.fault_ms = null
      return
    case 'restart_in_place':
      s.fault_ms ??= s.now_ms
      add(s, `restart in place from ${field(f, 'from')} (attempt ${field(f, 'attempt')})`, 'warn')
      return
    case 'resigned':
      add(s, `resigned: ${field(f, 'reason')}`, 'fault')
      return
    case 'handover_started':
      s.handover_ms = s.now_ms
      add(s, `hand-over started (then ${field(f, 'after')})`, 'warn')
      return
    case 'handover_finished':
      add(s, `hand-over to ${who('successor')} finished`, 'good', since(s.handover_ms, s.now_ms))
      s.handover_ms = null
      return
    case 'merge_started':
      s.merge_ms ??= s.now_ms
      add(
        s,
        `merge into ${who('winner')} from fork ${shortSnapshot((f.fork as string) ?? null)}${size(f)}`,
        'warn',
      )
      return
    case 'merge_finished':
      add(
        s,
        `merge into ${who('winner')} finished (${field(f, 'attempts')} attempts)${size(f)}`,
        'good',
        since(s.merge_ms, s.now_ms),
      )
      s.merge_ms = null
      return
    case 'merge_failed':
      add(s, `merge failed: ${field(f, 'reason')}`, 'fault', since(s.merge_ms, s.now_ms))
      return
    default: {
      const text = Object.entries(f)
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(' ')
      add(s, `${notice.name.replace(/_/g, ' ')} ${text}`.trim(), 'info')
    }
  }
}

function applyProgress(s: Draft, notice: Extract<NodeNotice, { kind: 'progress' }>): void {
  const index = s.transfers.findIndex((t) => t.what === notice.what && t.id === notice.id)
  const old = index >= 0 ? s.transfers[index]! : null
  const fresh = old === null || (old.done_ms !== null && notice.bytes_done < old.bytes_done)
  const next: Transfer = fresh
    ? {
        what: notice.what,
        id: notice.id,
        bytes_done: notice.bytes_done,
        bytes_total: notice.bytes_total,
        started_ms: s.now_ms,
        first_bytes: notice.bytes_done,
        updated_ms: s.now_ms,
        done_ms: null,
      }
    : { ...old!, bytes_done: notice.bytes_done, bytes_total: notice.bytes_total, updated_ms: s.now_ms }
  const finished = next.bytes_total > 0 && next.bytes_done >= next.bytes_total && next.done_ms === null
  if (finished) {
    next.done_ms = s.now_ms
    const took = s.now_ms - next.started_ms
    const what = notice.what === 'restore' ? 'restore of' : 'collected'
    // Candidates collect every snapshot the server publishes: fold the routine ones into one line.
    add(
      s,
      `${what} ${shortSnapshot(notice.id)} (${formatBytes(next.bytes_total)} in ${formatDuration(took)})`,
      'info',
      notice.what === 'restore' ? since(s.fault_ms, s.now_ms) : null,
      notice.what === 'replicate' ? 'replicated' : null,
    )
  }
  const rest = s.transfers.filter((_, i) => i !== index)
  s.transfers = [...rest, next]
}

function pruneTransfers(transfers: Transfer[], now_ms: number): Transfer[] {
  const kept = transfers.filter((t) => t.done_ms === null || now_ms - t.done_ms < TRANSFER_LINGER_MS)
  return kept.length === transfers.length && kept.length <= MAX_TRANSFERS
    ? transfers
    : kept.slice(-MAX_TRANSFERS)
}

/** Bytes per second since the transfer was first seen, or null before two samples. */
export function transferRate(t: Transfer): number | null {
  const elapsed_ms = (t.done_ms ?? t.updated_ms) - t.started_ms
  if (elapsed_ms <= 0) return null
  return ((t.bytes_done - t.first_bytes) * 1000) / elapsed_ms
}

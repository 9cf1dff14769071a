import { readdirSync, readFileSync, readlinkSync } from 'node:fs'

/** What /proc/<pid>/stat says of a process; undefined once it is gone. */
export interface ProcInfo {
  state: string
  ppid: number
  pgrp: number
  /** Clock ticks after boot at which it started: with the boot id, names one process across pid reuse. */
  start_ticks: number
}

export function procInfo(pid: number): ProcInfo | undefined {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1')
  } catch {
    return undefined
  }
  // The command name may hold spaces and parentheses: fields start after the last `)` (field 3 on).
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
  return {
    state: fields[0] ?? '?',
    ppid: Number(fields[1]),
    pgrp: Number(fields[2]),
    start_ticks: Number(fields[19]),
  }
}

/** Running: present and not a zombie (a dead orphan waits for init, which reaps lazily on some machines). */
export function running(pid: number): boolean {
  const state = procInfo(pid)?.state
  return state !== undefined && state !== 'Z' && state !== 'X'
}

export function bootId(): string {
  return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
}

export function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').filter(Boolean).join(' ')
  } catch {
    return ''
  }
}

function pids(): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
}

/** Processes with an open file descriptor whose target is `target` (a path, or `socket:[inode]`). */
export function pidsWithOpen(targets: ReadonlySet<string>): number[] {
  const found: number[] = []
  for (const pid of pids()) {
    let fds: string[]
    try {
      fds = readdirSync(`/proc/${pid}/fd`)
    } catch {
      continue // gone, or not ours to read
    }
    for (const fd of fds) {
      let link: string
      try {
        link = readlinkSync(`/proc/${pid}/fd/${fd}`)
      } catch {
        continue
      }
      if (targets.has(link)) {
        found.push(pid)
        break
      }
    }
  }
  return found
}

/** Socket inodes listening on TCP `port` (any local address, IPv4 and IPv6). */
export function listeningInodes(port: number): Set<string> {
  const inodes = new Set<string>()
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string
    try {
      text = readFileSync(table, 'latin1')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      const columns = line.trim().split(/\s+/)
      const local = columns[1]
      if (!local || columns[3] !== '0A') continue // 0A: LISTEN
      if (Number.parseInt(local.slice(local.lastIndexOf(':') + 1), 16) === port) {
        inodes.add(`socket:[${columns[9]}]`)
      }
    }
  }
  return inodes
}

/** The process's environment holds exactly `entry` (NAME=value). */
export function environHas(pid: number, entry: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(entry)
  } catch {
    return false
  }
}

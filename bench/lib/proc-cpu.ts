import { readdirSync, readFileSync } from 'node:fs'

/** CPU ticks of a node, by part: its main thread, its other threads, and its service with helpers. */
export interface Usage {
  main: number
  threads: number
  /** Descendants (the service, helpers) and every child they or the node reaped (probes started and ended). */
  children: number
  rss_kib: number
}

/** utime, stime, cutime, cstime (ticks) and the parent of /proc/<path>/stat, or null when gone. */
function stat(path: string): { ppid: number; own: number; reaped: number } | null {
  try {
    const text = readFileSync(`/proc/${path}/stat`, 'utf8')
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
    return {
      ppid: Number(fields[1]),
      own: Number(fields[11]) + Number(fields[12]),
      reaped: Number(fields[13]) + Number(fields[14]),
    }
  } catch {
    return null // gone meanwhile
  }
}

/**
 * CPU ticks (user + system) of a node process and every descendant, with the ticks of children that
 * ended (cutime + cstime): a probe helper lives ~20 ms and is never seen alive by a sampler, yet it
 * was most of an idle server's cost. The node process's own RSS (KiB).
 */
export function usage(pid: number): Usage {
  const all = new Map<number, { ppid: number; own: number; reaped: number }>()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const s = stat(name)
    if (s) all.set(Number(name), s)
  }
  const tree = new Set([pid])
  for (let grew = true, rounds = 0; grew && rounds < 20; rounds++) {
    grew = false
    for (const [child, s] of all) {
      if (tree.has(s.ppid) && !tree.has(child)) {
        tree.add(child)
        grew = true
      }
    }
  }
  let main = 0
  let threads = 0
  let children = 0
  for (const p of tree) {
    const s = all.get(p)!
    children += s.reaped
    if (p !== pid) {
      children += s.own
      continue
    }
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const t = stat(`${pid}/task/${tid}`)
      if (t === null) continue
      if (Number(tid) === pid) main += t.own
      else threads += t.own
    }
  }
  const rss = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return { main, threads, children, rss_kib: Number(rss?.[1] ?? 0) }
}

export const ticks = (u: Usage) => u.main + u.threads + u.children

import { ticks, type Usage, usage } from '../lib/proc-cpu.ts'
import type { LabNode } from './lab-federation.ts'
import type { LabNet } from './lab-net.ts'

/** Bytes through a node's link (both ways), from its namespace's interface counters. */
async function linkBytes(lab: LabNet, node: LabNode): Promise<number> {
  const dev = `fln${node.index}`
  const read = (what: string) => lab.exec(node.host, ['cat', `/sys/class/net/${dev}/statistics/${what}`])
  const [rx, tx] = await Promise.all([read('rx_bytes'), read('tx_bytes')])
  return Number(rx) + Number(tx)
}

/** UDP datagrams and TCP segments through a node's namespace (both ways), from its /proc/net/snmp. */
async function packets(lab: LabNet, node: LabNode): Promise<{ udp: number; tcp: number }> {
  const lines = (await lab.exec(node.host, ['cat', '/proc/net/snmp'])).split('\n')
  const field = (proto: string, names: string[]) => {
    const [header, values] = lines.filter((l) => l.startsWith(`${proto}:`)).map((l) => l.split(/\s+/))
    return names.reduce((sum, name) => sum + Number(values?.[header?.indexOf(name) ?? -1] ?? 0), 0)
  }
  return {
    udp: field('Udp', ['InDatagrams', 'OutDatagrams']),
    tcp: field('Tcp', ['InSegs', 'OutSegs']),
  }
}

/**
 * Per-node means over `window_ms` of an idle federation (no client): CPU % of one core (the node and its
 * service, from /proc ticks: CPU time, which the machine's load does not inflate), split by part and by
 * role (the server runs the service and takes snapshots; `server` is its index), RSS of the node process,
 * and bytes per second on its link (idle: heartbeats, DHT, lanes).
 */
export async function measureIdle(
  lab: LabNet,
  nodes: LabNode[],
  window_ms: number,
  server: number,
): Promise<{
  idle_cpu_pct: number
  server_cpu_pct: number
  candidate_cpu_pct: number | null
  cpu_main_thread_pct: number
  cpu_other_threads_pct: number
  cpu_service_pct: number
  rss_mib: number
  control_bytes_per_s: number
  udp_packets_per_s: number
  tcp_segments_per_s: number
}> {
  const tick_hz = 100 // CLK_TCK on Linux
  const first = nodes.map((n) => usage(n.pid!))
  const bytes_first = await Promise.all(nodes.map((n) => linkBytes(lab, n)))
  const packets_first = await Promise.all(nodes.map((n) => packets(lab, n)))
  const t0 = performance.now()
  await new Promise((resolve) => setTimeout(resolve, window_ms))
  const last = nodes.map((n) => usage(n.pid!))
  const bytes_last = await Promise.all(nodes.map((n) => linkBytes(lab, n)))
  const packets_last = await Promise.all(nodes.map((n) => packets(lab, n)))
  const seconds = (performance.now() - t0) / 1000
  const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length
  const round = (x: number, digits: number) => Number(x.toFixed(digits))
  const pct = (i: number, part: (u: Usage) => number) =>
    ((part(last[i]!) - part(first[i]!)) / tick_hz / seconds) * 100
  const all = nodes.map((_, i) => i)
  const candidates = all.filter((i) => i !== server)
  return {
    idle_cpu_pct: round(mean(all.map((i) => pct(i, ticks))), 2),
    server_cpu_pct: round(pct(server, ticks), 2),
    candidate_cpu_pct: candidates.length === 0 ? null : round(mean(candidates.map((i) => pct(i, ticks))), 2),
    cpu_main_thread_pct: round(mean(all.map((i) => pct(i, (u) => u.main))), 2),
    cpu_other_threads_pct: round(mean(all.map((i) => pct(i, (u) => u.threads))), 2),
    cpu_service_pct: round(mean(all.map((i) => pct(i, (u) => u.children))), 2),
    rss_mib: round(mean(last.map((u) => u.rss_kib / 1024)), 1),
    control_bytes_per_s: round(mean(nodes.map((_, i) => (bytes_last[i]! - bytes_first[i]!) / seconds)), 0),
    // Which plane the bytes travel on: UDP is hyperswarm (control plane, DHT), TCP the data lanes.
    udp_packets_per_s: round(
      mean(nodes.map((_, i) => (packets_last[i]!.udp - packets_first[i]!.udp) / seconds)),
      0,
    ),
    tcp_segments_per_s: round(
      mean(nodes.map((_, i) => (packets_last[i]!.tcp - packets_first[i]!.tcp) / seconds)),
      0,
    ),
  }
}

import { z } from 'zod'
import { HOST_PORT_FORM, hostPortText } from './host-port.ts'

/**
 * The node config file (YAML or JSON). Every field has a default except the federation secret, which
 * `sustain init` writes; timings name their unit.
 */
/** A DHT bootstrap node: read as `host:port` or {host, port}, kept (and written back) as `host:port`. */
const host_port = z.unknown().transform((value, ctx) => {
  const text = hostPortText(value)
  if (text !== null) return text
  ctx.addIssue({ code: 'custom', message: `expected ${HOST_PORT_FORM}`, input: value })
  return z.NEVER
})

/** Most candidates a server may wait on (more is a typo: every federation member would have to confirm). */
export const MAX_OUTPUT_COMMIT_K = 32

/** `off`, or the number k of candidates that must store a snapshot before output it covers is released. */
const output_commit = z.union([
  z.literal('off'),
  z
    .number()
    .int('k is a whole number of candidates')
    .min(1, 'k is at least 1 (or `off`)')
    .max(MAX_OUTPUT_COMMIT_K, `k is at most ${MAX_OUTPUT_COMMIT_K}`),
])

/** Dotted IPv4 (each part 0-255), optionally `/0`-`/32`. */
const IPV4_CIDR =
  /^((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\/(3[0-2]|[12]?\d))?$/

export const config_schema = z
  .object({
    version: z.literal(1),
    node: z
      .object({
        name: z
          .string()
          .min(1)
          .max(64)
          .regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, dot, dash, underscore'),
        priority: z.number().int().min(0).max(1_000_000).default(100),
        /**
         * `capacity` election: where this PC stands (a room, a building, a town). At an equal load step a
         * candidate at another site than the failed server's is elected first. None: no preference.
         */
        site: z
          .string()
          .min(1)
          .max(64)
          .regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, dot, dash, underscore')
          .optional(),
        /**
         * `capacity` election: bytes of the data directory's filesystem kept for everything else. The
         * node reports free disk less this as its room, and is not elected to restore a snapshot whose
         * state does not fit in it.
         */
        disk_reserve_bytes: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
      })
      .strict(),
    federation: z
      .object({
        name: z.string().min(1).max(64),
        secret: z.string().regex(/^[0-9a-f]{64}$/, '64 hex characters (32 bytes)'),
        /** DHT bootstrap nodes (`host:port`); empty means a local testnet (demo, tests). */
        bootstrap: z.array(host_port).default([]),
        /** Address every DHT node of this process binds. */
        host: z.string().default('127.0.0.1'),
        /**
         * Also serve as a DHT bootstrap node on `host`:this port (0: not), so a federation on a LAN needs
         * no other DHT: `sustain init` sets it and lists the address in `bootstrap` (src/runtime/dht-bootstrap.ts).
         */
        serve_bootstrap_port: z.number().int().min(0).max(65_535).default(0),
        /** With no bootstrap nodes: use the public hyperswarm DHT (internet; an explicit choice). */
        public_dht: z.boolean().default(false),
        /**
         * Snapshot data on a direct TCP lane to each peer whose lane is reachable (on `host`); the
         * hyperswarm data plane (hole punching) carries it where not. `port` 0: any free port;
         * `advertised_port`: the port peers dial when a router forwards it to `port` (0: `port` itself).
         */
        lane: z
          .object({
            enabled: z.boolean().default(true),
            port: z.number().int().min(0).max(65_535).default(0),
            advertised_port: z.number().int().min(0).max(65_535).default(0),
          })
          .strict()
          .default({ enabled: true, port: 0, advertised_port: 0 }),
      })
      .strict(),
    election: z
      .object({
        strategy: z.enum(['static', 'freshest', 'capacity']).default('static'),
        preempt: z.boolean().default(false),
        merge_direction: z.enum(['priority', 'newest-term']).default('priority'),
        /**
         * Without a merge helper: `keep-higher` (both sides serve; the loser's state is kept aside on heal) or
         * `refuse-to-split` (only a side with a strict majority of the members serves; a minority waits).
         */
        merge_policy: z.enum(['helper', 'keep-higher', 'refuse-to-split']).default('helper'),
        /**
         * `capacity` election: how strong this PC is relative to the others (2 = twice as strong). The
         * reported load is (measured CPU or memory use + 1) / weight (runtime/load-figure.ts).
         */
        capacity_weight: z.number().positive().max(1000).default(1),
      })
      .strict()
      .default({
        strategy: 'static',
        preempt: false,
        merge_direction: 'priority',
        merge_policy: 'helper',
        capacity_weight: 1,
      }),
    timing: z
      .object({
        heartbeat_interval_ms: z.number().int().min(20).max(10_000).default(200),
        phi_threshold: z.number().min(1).max(50).default(8),
        join_wait_ms: z.number().int().min(0).default(1500),
        election_timeout_ms: z.number().int().min(50).default(1000),
        snapshot_interval_ms: z.number().int().min(100).default(5000),
        restart_budget: z.number().int().min(0).max(100).default(3),
        restart_window_ms: z.number().int().min(1000).default(60_000),
      })
      .strict()
      .default({
        heartbeat_interval_ms: 200,
        phi_threshold: 8,
        join_wait_ms: 1500,
        election_timeout_ms: 1000,
        snapshot_interval_ms: 5000,
        restart_budget: 3,
        restart_window_ms: 60_000,
      }),
    service: z
      .object({
        /** Directory holding sustain-service.yaml (command, helper, probe settings). */
        dir: z.string().min(1),
        /** Loopback port the service listens on when this node serves (SUSTAIN_PORT). */
        port: z.number().int().min(1).max(65_535),
        /** Loopback port of each client port whose `env` is not SUSTAIN_PORT, by port name. */
        ports: z.record(z.string(), z.number().int().min(1).max(65_535)).optional(),
        /**
         * Zero-loss mode (ARCHITECTURE.md, Output commit): `off`, or k: the server's front door holds what
         * the service sends to a client until a snapshot taken after it is stored on k candidates.
         */
        output_commit: output_commit.default('off'),
        /**
         * `warm`: while this node is the candidate the election would pick first, it keeps the newest
         * snapshot it collected decoded beside the state directory, and a failover swaps it in instead of
         * decoding (runtime/warm-standby.ts; costs one more copy of the state on disk and one decode per
         * snapshot). `cold`: a failover decodes the snapshot.
         */
        standby: z.enum(['warm', 'cold']).default('cold'),
      })
      .strict()
      .optional(),
    /**
     * Where this node accepts the service's clients (src/frontdoor): `ports` maps each client port the
     * service declares to the TCP port listened on here; a client may use any node. `bind` 127.0.0.1
     * (the demo) or 0.0.0.0 / an address (a deployment). `hold_ms`: how long a connection waits for a
     * server while none is known; `max_held`: past this many waiting, new ones are refused at once.
     */
    front_door: z
      .object({
        bind: z.string().min(1).default('127.0.0.1'),
        ports: z.record(z.string(), z.number().int().min(1).max(65_535)).default({}),
        hold_ms: z.number().int().min(0).max(600_000).default(10_000),
        max_held: z.number().int().min(1).max(100_000).default(1000),
        /**
         * Under refuse-to-split (and so Type3), what a front door on a side without a majority does with
         * a new client while no server is known: `hold` it (up to hold_ms; a heal may bring a server) or
         * `refuse` it at once (RST), so a client can try another address instead of waiting.
         */
        minority: z.enum(['hold', 'refuse']).default('hold'),
        /** Answer DNS for `name` (UDP and TCP on `port`) with the reachable front doors, server first. */
        dns: z
          .object({
            name: z.string().regex(/^([A-Za-z0-9-]{1,63}\.)*[A-Za-z0-9-]{1,63}\.?$/, 'a DNS name'),
            port: z.number().int().min(1).max(65_535).default(53),
            ttl_s: z.number().int().min(0).max(5).default(5),
            /** Also answer mDNS on the LAN (224.0.0.251:5353, from `federation.host`) for NAME.local (dns/mdns.ts). */
            mdns: z.boolean().default(false),
          })
          .strict()
          .optional(),
        /**
         * Virtual IP (LAN, root): the server adds `address` (IPv4, `/prefix` of the LAN, default /32) to
         * `interface` and announces it by gratuitous ARP; a node that stops serving removes it first.
         */
        vip: z
          .object({
            address: z
              .string()
              .regex(IPV4_CIDR, 'an IPv4 address, optionally with /prefix (e.g. 192.168.1.100/24)'),
            interface: z.string().regex(/^[A-Za-z0-9_.@-]{1,15}$/, 'a network interface name (e.g. eth0)'),
          })
          .strict()
          .optional(),
      })
      .strict()
      .optional(),
    snapshots: z
      .object({
        keep: z.number().int().min(1).max(1000).default(4),
        /**
         * r-way replication: each chunk of a snapshot is kept by `r` members besides its writer, chosen
         * by rendezvous hashing (overlay/rendezvous.ts), and a restore collects from the holders.
         * `all` (the default): every member keeps every snapshot whole, as a complete local copy.
         */
        replication_factor: z.union([z.literal('all'), z.number().int().min(1).max(64)]).default('all'),
      })
      .strict()
      .default({ keep: 4, replication_factor: 'all' }),
    log: z
      .object({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'silent']).default('info') })
      .strict()
      .default({ level: 'info' }),
  })
  .strict()
  .superRefine((config, ctx) => {
    // Output is held at the front door: without one, clients reach the service directly and nothing holds it.
    if (config.service && config.service.output_commit !== 'off' && !config.front_door)
      ctx.addIssue({
        code: 'custom',
        path: ['service', 'output_commit'],
        message:
          'output_commit needs a front_door (output is held there); add front_door.ports or set it off',
      })
    // The front door must accept on the VIP, which only the server has: listen on every address.
    const door = config.front_door
    if (door?.vip && door.bind !== '0.0.0.0' && door.bind !== '::')
      ctx.addIssue({
        code: 'custom',
        path: ['front_door', 'bind'],
        message: `front_door.vip needs front_door.bind 0.0.0.0 or :: (the address ${door.vip.address} is on this node only while it serves); got ${door.bind}`,
      })
  })

export type SustainConfig = z.infer<typeof config_schema>

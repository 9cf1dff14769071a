import { readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import { describeSchemaIssue } from '../../config/describe-issue.ts'
import { ConfigError } from '../../config/load.ts'
import { SERVICE_TYPES } from '../../core/service-type.ts'
import { appendOnlyGlob } from './append-only.ts'

export const MANIFEST_FILE = 'sustain-service.yaml'

/** Table 1 of the original design: what a service tolerates while the federation is split (core/service-type.ts). */
export const service_types = SERVICE_TYPES

/**
 * One port the service's clients connect to. The process learns its local port from `env`:
 * SUSTAIN_PORT (the node's `service.port`) or a variable of its own (the node's `service.ports.NAME`).
 */
export const client_port_schema = z
  .object({
    name: z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, 'a name of lower-case letters, digits, -'),
    protocol: z.literal('tcp').default('tcp'),
    env: z
      .string()
      .regex(/^SUSTAIN_PORT(_[A-Z0-9_]+)?$/, 'SUSTAIN_PORT or SUSTAIN_PORT_<NAME>')
      .default('SUSTAIN_PORT'),
    /** Start each forwarded connection with a PROXY protocol v2 header naming the client. */
    proxy_protocol: z.boolean().default(false),
  })
  .strict()

export type ClientPort = z.infer<typeof client_port_schema>

function uniqueClientPorts(ports: ClientPort[], ctx: z.RefinementCtx): void {
  for (const key of ['name', 'env'] as const) {
    const seen = new Set<string>()
    for (const port of ports) {
      if (seen.has(port[key]))
        ctx.addIssue({ code: 'custom', message: `two client ports with ${key} ${port[key]}` })
      seen.add(port[key])
    }
  }
}

/** More copies than this is a typo, not a plan (a federation of ordinary PCs). */
export const MAX_REPLICAS = 32

/** Copies of a service with state would diverge: only a stateless (type0) service may run on several nodes. */
function replicasNeedType0(m: { type: string; replicas?: number | undefined }, ctx: z.RefinementCtx): void {
  if (m.replicas === undefined || m.type === 'type0') return
  ctx.addIssue({
    code: 'custom',
    path: ['replicas'],
    message:
      `type: type0 (only a service that keeps no state may run on several nodes at once; this one is ` +
      `${m.type}, whose copies' state would diverge): remove replicas, or declare type: type0 if the ` +
      'service really keeps nothing',
  })
}

export const manifest_schema = z
  .object({
    version: z.literal(1),
    /** Which driver runs the service (create-driver.ts); absent means this one. */
    driver: z.literal('process').optional(),
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'a name of letters, digits, . _ -'),
    type: z.enum(service_types),
    /**
     * Type0 only: this many nodes run the service at once and the front door spreads clients among
     * them (runtime/replica-runner.ts). Absent: one server with snapshots, as for the other types.
     */
    replicas: z.number().int().min(1).max(MAX_REPLICAS).optional(),
    /** argv; relative paths resolve against the service directory (it is also the working directory). */
    command: z.array(z.string().min(1)).min(1),
    /** Path of the helper executable (probe, quiesce, resume, archive, merge, info). */
    helper: z.string().min(1).optional(),
    probe_interval_ms: z.number().int().min(10).max(600_000).default(500),
    probe_timeout_ms: z.number().int().min(10).max(600_000).default(2000),
    stop_timeout_ms: z.number().int().min(0).max(600_000).default(3000),
    env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string()).optional(),
    /**
     * Files of the state directory (globs relative to it: `*` within a name, `**` across directories)
     * that the service only ever appends to while they keep their inode (an mbox, a log, a journal).
     * A capture copies only what such a file grew by; anything else that changed is copied whole.
     */
    append_only: z.array(appendOnlyGlob).max(64).default([]),
    /**
     * The command may be started ahead of need: it loads, then waits for the node's start line
     * (helpers' `waitForStart`, ENV.start_fd) before it reads its state or listens. The top candidate
     * keeps one such copy waiting, so a failover or hand-over to it skips the process start.
     */
    prestart: z.boolean().default(false),
    /** The ports clients use; every node's front door accepts them and forwards to the server. */
    client_ports: z.array(client_port_schema).max(16).default([]).superRefine(uniqueClientPorts),
  })
  .strict()
  .superRefine(replicasNeedType0)

export type ServiceManifest = z.infer<typeof manifest_schema>

/** Validates a parsed manifest; throws a ConfigError naming every bad field, its value and what was expected. */
export function parseServiceManifest(input: unknown, source = MANIFEST_FILE): ServiceManifest {
  const result = manifest_schema.safeParse(input)
  if (result.success) return result.data
  const lines = result.error.issues.map((issue) => `  ${describeSchemaIssue(input, issue)}`)
  throw new ConfigError(`${source} is invalid:\n${lines.join('\n')}`)
}

/** Reads `<dir>/sustain-service.yaml`. */
export async function loadServiceManifest(dir: string): Promise<ServiceManifest> {
  const path = join(resolve(dir), MANIFEST_FILE)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    const why = code === 'ENOENT' ? 'no such file' : code === 'ENOTDIR' ? 'not a directory' : String(error)
    throw new ConfigError(`cannot read service manifest ${path}: ${why}`)
  }
  let parsed: unknown
  try {
    parsed = parseYaml(text)
  } catch (error) {
    throw new ConfigError(`${path} is not valid YAML: ${(error as Error).message.split('\n')[0]}`)
  }
  return parseServiceManifest(parsed, path)
}

import { readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import { describeSchemaIssue } from '../../config/describe-issue.ts'
import { ConfigError } from '../../config/load.ts'
import { MANIFEST_FILE, service_types } from '../process/manifest.ts'

const port = z.number().int().min(1).max(65_535)
const disk_name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/, 'a name of letters, digits, _ -')

/**
 * One port the service's clients connect to (the front door, src/frontdoor): `guest_port` inside the guest,
 * reached by a user-networking `hostfwd` from a loopback port of the node: the node's `service.port` when
 * it is `ports.service`, else the node's `service.ports.NAME`.
 */
export const qemu_client_port_schema = z
  .object({
    name: z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, 'a name of lower-case letters, digits, -'),
    protocol: z.literal('tcp').default('tcp'),
    guest_port: port,
    /** Start each forwarded connection with a PROXY protocol v2 header naming the client. */
    proxy_protocol: z.boolean().default(false),
  })
  .strict()

export type QemuClientPort = z.infer<typeof qemu_client_port_schema>

function uniqueClientPorts(ports: QemuClientPort[], ctx: z.RefinementCtx): void {
  for (const key of ['name', 'guest_port'] as const) {
    const seen = new Set<string | number>()
    for (const p of ports) {
      if (seen.has(p[key]))
        ctx.addIssue({ code: 'custom', message: `two client ports with ${key} ${p[key]}` })
      seen.add(p[key])
    }
  }
}

/**
 * `sustain-service.yaml` of a service that runs in a QEMU guest (`driver: qemu`). Paths are relative to
 * the service directory. The guest's memory and its disks are the state; the service itself is untouched.
 */
export const qemu_manifest_schema = z
  .object({
    version: z.literal(1),
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'a name of letters, digits, . _ -'),
    type: z.enum(service_types),
    driver: z.literal('qemu'),
    memory_mib: z
      .number()
      .int()
      .min(16)
      .max(1024 * 1024)
      .default(128),
    cpus: z.number().int().min(1).max(64).default(1),
    /** Direct kernel boot (kernel + initrd + append); without `kernel` the guest boots from its first disk. */
    kernel: z.string().min(1).optional(),
    initrd: z.string().min(1).optional(),
    append: z.string().default('console=ttyS0'),
    disks: z
      .array(
        z
          .object({
            /** The disk's file in the state directory is `<name>.<format>`; also its QEMU drive id. */
            name: disk_name,
            /** Copied into the state directory on the first start (a template); else `size_mib` of zeros. */
            image: z.string().min(1).optional(),
            size_mib: z.number().int().min(1).optional(),
            format: z.enum(['raw', 'qcow2']).default('raw'),
          })
          .strict()
          .refine((d) => d.image !== undefined || d.size_mib !== undefined, 'image or size_mib'),
      )
      .default([]),
    /**
     * `user` (default): one virtio NIC on QEMU's user networking with `restrict=on` (the guest reaches
     * nothing; only the forwarded ports reach it). `none`: the guest has no NIC: no ports, no SSH helpers,
     * no banner probe, no client ports.
     */
    network: z.enum(['user', 'none']).default('user'),
    /** Guest ports: `service` is forwarded from the node's service port, `ssh` from a free local port. */
    ports: z.object({ service: port, ssh: port.optional() }).strict().optional(),
    /** The ports clients use through the front door; each is forwarded into the guest (see above). */
    client_ports: z.array(qemu_client_port_schema).max(16).default([]).superRefine(uniqueClientPorts),
    /** Probe: connect to the service and expect a first line matching `banner` (a regular expression). */
    probe: z
      .object({ banner: z.string().min(1).optional(), helper: z.boolean().default(false) })
      .strict()
      .default({ helper: false }),
    ssh: z
      .object({
        user: z.string().min(1).default('root'),
        /** The client's private key (OpenSSH or PEM format). */
        private_key: z.string().min(1),
        /** The guest's host public key (`ssh-ed25519 AAAA...`): pinned, any other key is refused. */
        host_key: z.string().min(1),
        /** Path of the helper executable inside the guest. */
        helper: z.string().min(1),
      })
      .strict()
      .optional(),
    probe_interval_ms: z.number().int().min(10).max(600_000).default(500),
    probe_timeout_ms: z.number().int().min(10).max(600_000).default(2000),
    stop_timeout_ms: z.number().int().min(0).max(600_000).default(3000),
    /** Appended to the QEMU command line as is (devices of a brought-in image). */
    qemu_args: z.array(z.string()).default([]),
  })
  .strict()
  .refine((m) => m.kernel !== undefined || m.disks.length > 0, 'a kernel or at least one disk to boot from')
  .superRefine((m, ctx) => {
    if (m.network === 'user' && m.ports === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['ports'],
        message: "ports.service, the guest port the node's service port forwards to (network: user)",
      })
    if (m.network !== 'none') return
    // Each of these reaches the guest through its NIC: without one it could never work.
    const needs_nic = [
      ['ports', m.ports !== undefined],
      ['client_ports', m.client_ports.length > 0],
      ['ssh', m.ssh !== undefined],
      ['probe.banner', m.probe.banner !== undefined],
    ] as const
    for (const [field, set] of needs_nic)
      if (set)
        ctx.addIssue({
          code: 'custom',
          path: field.split('.'),
          message: `nothing: ${field} is reached through a NIC and the guest has none (network: none)`,
        })
  })

export type QemuServiceManifest = z.infer<typeof qemu_manifest_schema>

export function parseQemuManifest(input: unknown, source = MANIFEST_FILE): QemuServiceManifest {
  const result = qemu_manifest_schema.safeParse(input)
  if (result.success) return result.data
  const lines = result.error.issues.map((issue) => `  ${describeSchemaIssue(input, issue)}`)
  throw new ConfigError(`${source} is invalid:\n${lines.join('\n')}`)
}

async function readManifestYaml(dir: string): Promise<{ path: string; parsed: unknown }> {
  const path = join(resolve(dir), MANIFEST_FILE)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    throw new ConfigError(`cannot read service manifest ${path}: ${(error as NodeJS.ErrnoException).code}`)
  }
  try {
    return { path, parsed: parseYaml(text) }
  } catch (error) {
    throw new ConfigError(`${path} is not valid YAML: ${(error as Error).message.split('\n')[0]}`)
  }
}

/** Which driver a service directory's manifest asks for (`driver:` absent means the process driver). */
export async function manifestDriverKind(dir: string): Promise<'process' | 'qemu'> {
  const { parsed } = await readManifestYaml(dir)
  const driver = (parsed as { driver?: unknown } | null)?.driver
  return driver === 'qemu' ? 'qemu' : 'process'
}

/** Reads `<dir>/sustain-service.yaml` of a QEMU service. */
export async function loadQemuManifest(dir: string): Promise<QemuServiceManifest> {
  const { path, parsed } = await readManifestYaml(dir)
  return parseQemuManifest(parsed, path)
}

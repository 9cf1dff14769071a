import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CRC32C_LIBRARY } from '../../src/native/crc32c-preload.ts'
import { HEAP_FLAGS } from '../../src/util/heap-flags.ts'
import { MALLOC_TUNABLES } from '../../src/util/malloc-tunables.ts'

const run = promisify(execFile)
const BIN = new URL('../../bin/sustain.js', import.meta.url).pathname
const sustain = (...args: string[]) => run(process.execPath, [BIN, ...args], { encoding: 'utf8' })

describe('sustain service: a systemd unit with the process settings README lists', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sustain-service-'))
    await sustain('init', '--data', join(dir, 'node'), '--name', 'alpha', '--serve-bootstrap', '0')
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('print: ExecStart runs join with the heap flags; malloc settings and the crc32c preload in its environment', async () => {
    const { stdout } = await sustain('service', 'print', '--data', join(dir, 'node'))
    const lines = stdout.split('\n')
    const exec = lines
      .find((l) => l.startsWith('ExecStart='))!
      .slice('ExecStart='.length)
      .split(' ')
    expect(exec).toEqual([process.execPath, ...HEAP_FLAGS, BIN, 'join', join(dir, 'node', 'sustain.yaml')])
    const env = Object.fromEntries(
      lines
        .filter((l) => l.startsWith('Environment='))
        .map((l) => l.slice('Environment='.length).split(/=(.*)/s)),
    )
    expect(env['GLIBC_TUNABLES']).toBe(MALLOC_TUNABLES.join(':'))
    expect(env['LD_PRELOAD']).toBe(existsSync(CRC32C_LIBRARY) ? CRC32C_LIBRARY : undefined)
    expect(lines).toContain('KillMode=mixed')
    // The command line works as written: the same node, flags and bin, asked for the version.
    const version = await run(exec[0]!, [...exec.slice(1, -2), '--version'], {
      env: { ...process.env, ...env },
    })
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/)
  })

  it('install writes the same unit (0644) as sustain-NAME.service; an unwritable place is one clear line', async () => {
    const { stdout } = await sustain('service', 'install', '--data', join(dir, 'node'), '--unit-dir', dir)
    const path = join(dir, 'sustain-alpha.service')
    expect(stdout).toContain(`wrote ${path}`)
    expect(await readFile(path, 'utf8')).toBe(
      (await sustain('service', 'print', '--data', join(dir, 'node'))).stdout,
    )
    expect((await stat(path)).mode & 0o777).toBe(0o644)
    const failed = await sustain(
      'service',
      'install',
      '--data',
      join(dir, 'node'),
      '--unit-dir',
      join(dir, 'none'),
    ).catch((e: { code: number; stderr: string }) => e)
    expect((failed as { code: number }).code).toBe(1)
    expect((failed as { stderr: string }).stderr).toMatch(
      /^sustain: cannot write .*sustain-alpha\.service \(ENOENT\)/,
    )
  })
})

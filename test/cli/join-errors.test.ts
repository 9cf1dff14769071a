import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const run = promisify(execFile)
const BIN = new URL('../../bin/sustain.js', import.meta.url).pathname
const MAIL = new URL('../../examples/mail', import.meta.url).pathname

async function sustain(...args: (string | NodeJS.ProcessEnv)[]) {
  const env = { ...process.env, ...(args.find((a) => typeof a === 'object') ?? {}) }
  const argv = args.filter((a) => typeof a === 'string')
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...argv], { timeout: 30_000, env })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

describe('sustain join: errors a person can cause get one clear line and a non-zero exit', () => {
  let dir: string
  let busy: Server
  let busy_port: number
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sustain-join-'))
    busy = createServer()
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', () => resolve()))
    busy_port = (busy.address() as { port: number }).port
  })
  afterAll(async () => {
    busy.close()
    await rm(dir, { recursive: true, force: true })
  })

  /** `sustain join` of a fresh node (data dir `node`) with a service made of this manifest alone. */
  async function joinService(node: string, service_name: string, manifest: string, port: number) {
    const service = join(dir, service_name)
    await mkdir(service)
    await writeFile(join(service, 'sustain-service.yaml'), manifest)
    await sustain('init', '--data', join(dir, node))
    return sustain(
      'join',
      join(dir, node, 'sustain.yaml'),
      '--service',
      service,
      '--port',
      String(port),
      '--bootstrap',
      '127.0.0.1:9',
    )
  }

  const oneLine = (stderr: string) =>
    stderr
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('sustain:'))

  it('a bad token', async () => {
    const result = await sustain('join', 'sustain1.AAAA', '--data', join(dir, 'a'))
    expect(result.code).not.toBe(0)
    expect(oneLine(result.stderr)).toEqual([expect.stringMatching(/invalid invite token/)])
  })

  it('neither a token nor a config file', async () => {
    const result = await sustain('join', join(dir, 'nothing.yaml'))
    expect(result.code).not.toBe(0)
    expect(result.stderr).toMatch(/neither an invite token .* nor a config file/)
  })

  it('the service port is in use', async () => {
    await sustain('init', '--data', join(dir, 'b'))
    const result = await sustain(
      'join',
      join(dir, 'b', 'sustain.yaml'),
      '--service',
      MAIL,
      '--port',
      String(busy_port),
      '--bootstrap',
      '127.0.0.1:9',
    )
    expect(result.code).not.toBe(0)
    expect(oneLine(result.stderr)).toEqual([expect.stringContaining(`port ${busy_port} is in use`)])
  })

  it('the service command is missing', async () => {
    const result = await joinService(
      'c',
      'svc',
      'version: 1\nname: gone\ntype: type1\ncommand: [./no-such-binary]\n',
      2999,
    )
    expect(result.code).not.toBe(0)
    expect(oneLine(result.stderr)).toEqual([expect.stringMatching(/no-such-binary.*no such file/)])
  })

  it('a service of type cannot is refused with why and which type fits', async () => {
    const result = await joinService(
      'f',
      'cannot-svc',
      'version: 1\nname: ledger\ntype: cannot\ncommand: [/bin/true]\n',
      2998,
    )
    expect(result.code).not.toBe(0)
    const [line] = oneLine(result.stderr)
    expect(line).toMatch(/service ledger declares type: cannot/)
    expect(line).toMatch(/while the network is split, one side lacks the data/)
    expect(line).toMatch(/type3 if its answers may wait/)
    expect(line).toMatch(/type2 if it can answer from the part/)
  })

  it('a native fast path missing is one log line, not an error', async () => {
    await sustain('init', '--data', join(dir, 'e'))
    const result = await sustain(
      'join',
      join(dir, 'e', 'sustain.yaml'),
      '--service',
      MAIL,
      '--port',
      String(busy_port),
      '--bootstrap',
      '127.0.0.1:9',
      { MSGPACKR_NATIVE_ACCELERATION_DISABLED: 'true' },
    )
    expect(result.stderr).toMatch(/msgpack decodes strings in JavaScript.*fallback.*msgpackr-extract/)
    expect(oneLine(result.stderr)).toEqual([expect.stringContaining(`port ${busy_port} is in use`)])
  })

  it('no bootstrap nodes', async () => {
    await sustain('init', '--data', join(dir, 'd'), '--serve-bootstrap', '0')
    const result = await sustain('join', join(dir, 'd', 'sustain.yaml'))
    expect(result.code).not.toBe(0)
    expect(result.stderr).toMatch(/no DHT bootstrap nodes/)
  })
})

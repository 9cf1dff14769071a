import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const run = promisify(execFile)
const BIN = new URL('../../bin/sustain.js', import.meta.url).pathname

async function sustain(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], {
      env: { ...process.env, NO_COLOR: '1' },
    })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

describe('sustain CLI', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sustain-cli-'))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('--version prints the package version and --help lists only working commands', async () => {
    const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8'))
    expect((await sustain('--version')).stdout.trim()).toBe(pkg.version)
    const help = await sustain('--help')
    expect(help.code).toBe(0)
    for (const command of ['init', 'invite', 'config', 'image']) expect(help.stdout).toContain(command)
  })

  it('init writes a 0600 identity and a valid config; a second init refuses and changes nothing', async () => {
    const data = join(dir, 'a')
    const first = await sustain('init', '--data', data, '--name', 'alpha', '--priority', '70')
    expect(first.code).toBe(0)
    const identity = await stat(join(data, 'identity.json'))
    expect(identity.mode & 0o777).toBe(0o600)
    const before = await readFile(join(data, 'identity.json'), 'utf8')
    const again = await sustain('init', '--data', data)
    expect(again.code).not.toBe(0)
    expect(again.stderr).toMatch(/already exists/)
    expect(await readFile(join(data, 'identity.json'), 'utf8')).toBe(before)
    const check = await sustain('config', 'check', '--data', data)
    expect(check.stdout).toMatch(/valid \(node alpha, priority 70/)
  })

  it('invite carries the federation to a node that joins with it', async () => {
    const a = join(dir, 'inv-a')
    const b = join(dir, 'inv-b')
    await sustain('init', '--data', a, '--federation', 'mail')
    const token = (await sustain('invite', '--data', a)).stdout.trim()
    expect(token).toMatch(/^sustain1\./)
    const joined = await sustain('init', '--data', b, '--invite', token)
    expect(joined.code).toBe(0)
    const secretOf = async (d: string) =>
      (await readFile(join(d, 'sustain.yaml'), 'utf8')).match(/secret: (\w+)/)![1]
    expect(await secretOf(b)).toBe(await secretOf(a))
    const damaged = await sustain('init', '--data', join(dir, 'inv-c'), '--invite', `${token.slice(0, 20)}!!`)
    expect(damaged.code).not.toBe(0)
    expect(damaged.stderr).toMatch(/invalid invite token/)
  })

  it('an invalid config names the field, the value and what was expected', async () => {
    const file = join(dir, 'bad.yaml')
    await writeFile(
      file,
      'version: 1\nnode: { name: x, priority: -3 }\nfederation: { name: f, secret: nothex }\nelection: { strategy: fastest }\n',
    )
    const result = await sustain('config', 'check', file)
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('field node.priority: got -3, expected number to be >=0')
    expect(result.stderr).toContain('field election.strategy: got "fastest", expected one of')
    expect(result.stderr).toContain('field federation.secret: got "nothex"')
  })

  it('bootstrap nodes: host:port strings, {host, port} objects read too; a bad one names the form expected', async () => {
    const a = join(dir, 'boot-a')
    await sustain('init', '--data', a, '--serve-bootstrap', '0')
    const config = join(a, 'sustain.yaml')
    const text = await readFile(config, 'utf8')
    // The form of older config files: objects. The invite carries them to the new node as host:port.
    await writeFile(
      config,
      text.replace(
        'bootstrap: []',
        'bootstrap:\n    - { host: 10.0.0.2, port: 49737 }\n    - 10.0.0.3:49738',
      ),
    )
    const check = await sustain('config', 'check', config)
    expect(check.stdout).toMatch(/bootstrap 10\.0\.0\.2:49737 10\.0\.0\.3:49738\)/)
    const b = join(dir, 'boot-b')
    await sustain('init', '--data', b, '--invite', (await sustain('invite', '--data', a)).stdout.trim())
    expect(await readFile(join(b, 'sustain.yaml'), 'utf8')).toMatch(
      /bootstrap:\n\s+- 10\.0\.0\.2:49737\n\s+- 10\.0\.0\.3:49738\n/,
    )
    const bad = join(dir, 'boot-bad.yaml')
    await writeFile(bad, text.replace('bootstrap: []', 'bootstrap: ["10.0.0.2", { host: x }, "h:70000"]'))
    const result = await sustain('config', 'check', bad)
    expect(result.code).toBe(1)
    const form = 'expected a "host:port" string such as "192.0.2.7:49737" ({host, port} is read too)'
    expect(result.stderr).toContain(`field federation.bootstrap.0: got "10.0.0.2", ${form}`)
    expect(result.stderr).toContain(`field federation.bootstrap.1: got {"host":"x"}, ${form}`)
    expect(result.stderr).toContain(`field federation.bootstrap.2: got "h:70000", ${form}`)
  })

  it('a bad option value gets one clear line', async () => {
    const result = await sustain('init', '--data', join(dir, 'x'), '--priority', 'high')
    expect(result.code).not.toBe(0)
    expect(result.stderr).toMatch(/--priority must be an integer/)
  })
})

import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { PassThrough, Readable } from 'node:stream'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ConfigError } from '../../src/config/load.ts'
import { loadServiceManifest } from '../../src/drivers/process/manifest.ts'
import { type Fixture, fixture, gone, manifestYaml } from './fixtures.ts'

let f: Fixture
beforeEach(async () => {
  f = await fixture()
})
afterEach(async () => {
  await f.cleanup()
})

describe('service manifest', () => {
  it('loads with defaults', async () => {
    await writeFile(
      join(f.service_dir, 'sustain-service.yaml'),
      manifestYaml({ version: 1, name: 'mail', type: 'type1', command: ['./service.sh'] }),
    )
    expect(await loadServiceManifest(f.service_dir)).toEqual({
      version: 1,
      name: 'mail',
      type: 'type1',
      command: ['./service.sh'],
      probe_interval_ms: 500,
      probe_timeout_ms: 2000,
      stop_timeout_ms: 3000,
      append_only: [],
      prestart: false,
      client_ports: [],
    })
  })

  it('accepts driver: process and names the field when another driver is named', async () => {
    const base = { version: 1, name: 'mail', type: 'type1', command: ['./service.sh'] }
    await writeFile(join(f.service_dir, 'sustain-service.yaml'), manifestYaml({ ...base, driver: 'process' }))
    expect((await loadServiceManifest(f.service_dir)).driver).toBe('process')
    await writeFile(join(f.service_dir, 'sustain-service.yaml'), manifestYaml({ ...base, driver: 'docker' }))
    await expect(loadServiceManifest(f.service_dir)).rejects.toThrow(
      /field driver: got "docker", expected "process"/,
    )
  })

  it('names every bad field, its value and what was expected', async () => {
    await writeFile(
      join(f.service_dir, 'sustain-service.yaml'),
      manifestYaml({
        version: 2,
        name: 'mail',
        type: 'type9',
        command: [],
        probe_interval_ms: -1,
        colour: 'red',
      }),
    )
    const error = await loadServiceManifest(f.service_dir).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ConfigError)
    const message = (error as Error).message
    expect(message).toContain('sustain-service.yaml is invalid')
    expect(message).toMatch(/field version: got 2, expected 1/)
    expect(message).toMatch(
      /field type: got "type9", expected one of "type0"\|"type1"\|"type2"\|"type3"\|"cannot"/,
    )
    expect(message).toMatch(/field command: got \[\], expected array to have >=1 items/)
    expect(message).toMatch(/field probe_interval_ms: got -1, expected number to be >=10/)
    expect(message).toMatch(/unknown key\(s\) colour/)
  })

  it('a missing manifest and bad YAML are one clear error each', async () => {
    await expect(loadServiceManifest(join(f.dir, 'nowhere'))).rejects.toThrow(
      /cannot read service manifest .*nowhere\/sustain-service\.yaml: no such file/,
    )
    await writeFile(join(f.service_dir, 'sustain-service.yaml'), 'command: [unclosed\n')
    await expect(loadServiceManifest(f.service_dir)).rejects.toThrow(/is not valid YAML/)
  })
})

describe('service command', () => {
  it('a missing, a non-executable and an unknown command are clear errors', async () => {
    const missing = await f.driver({ command: ['./nope.sh'] })
    await expect(missing.start()).rejects.toThrow(
      /service command of test: \.\/nope\.sh \(.*\/nope\.sh\): no such file/,
    )
    await writeFile(join(f.service_dir, 'plain.txt'), 'not a program')
    const plain = await f.driver({ command: ['./plain.txt'] })
    await expect(plain.start()).rejects.toThrow(/plain\.txt\): not executable/)
    const unknown = await f.driver({ command: ['no-such-program-sustain'] })
    await expect(unknown.start()).rejects.toThrow(/no-such-program-sustain: not found in PATH/)
    expect(missing.running || plain.running || unknown.running).toBe(false)
  })

  it('relative paths resolve against the service directory; arguments are passed as given', async () => {
    await mkdir(join(f.service_dir, 'bin'))
    await writeFile(
      join(f.service_dir, 'bin', 'run.sh'),
      '#!/usr/bin/env bash\necho "$1" > "$SUSTAIN_STATE_DIR/arg"\nexec sleep 1000\n',
    )
    await chmod(join(f.service_dir, 'bin', 'run.sh'), 0o755)
    const driver = await f.driver({ command: ['bin/run.sh', 'hello world'], helper: undefined })
    await driver.start()
    for (let i = 0; i < 200; i++) {
      const text = await readFile(join(f.state_dir, 'arg'), 'utf8').catch(() => '')
      if (text) {
        expect(text).toBe('hello world\n')
        return
      }
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    throw new Error('the service never wrote its argument')
  })
})

describe('helper', () => {
  it('passes args and stdin, returns the exit code, stdout and stderr; context env', async () => {
    const driver = await f.driver({ env: { EXTRA: 'x1' } })
    const result = await driver.helper('echo', ['a', 'b'], { stdin: Readable.from([Buffer.from('in\n')]) })
    expect(result.code).toBe(3)
    expect(result.stdout.toString()).toBe('args: a b\nin\n')
    expect(result.stderr).toBe('to stderr\n')
    const env = await driver.helper('env', [], { env: { CONTEXT: 'fork=7' } })
    expect(env.stdout.toString()).toBe(`2500 ${f.service_dir} ${f.state_dir} x1 fork=7\n`)
    const unknown = await driver.helper('frobnicate', [])
    expect(unknown.code).toBe(64)
  })

  it('streams stdout to a writable when asked', async () => {
    const driver = await f.driver()
    const out = new PassThrough()
    const chunks: Buffer[] = []
    out.on('data', (chunk: Buffer) => chunks.push(chunk))
    const result = await driver.helper('echo', ['streamed'], { stdout: out })
    expect(result.stdout.length).toBe(0)
    expect(Buffer.concat(chunks).toString()).toBe('args: streamed\n')
  })

  it('a helper past its timeout is killed with what it started, and the call rejects clearly', async () => {
    const driver = await f.driver()
    const started = performance.now()
    const error = await driver.helper('slow', [], { timeout_ms: 300 }).catch((e: unknown) => e)
    expect(performance.now() - started).toBeLessThan(3000)
    expect(String(error)).toMatch(/helper slow timed out after 300 ms \(killed\)/)
    const pid = Number(await readFile(`${f.helper_log}.slowpid`, 'utf8'))
    expect(await gone(pid)).toBe(true)
  })

  it('no helper in the manifest, or a missing helper file, is a clear error', async () => {
    const none = await f.driver({ helper: undefined })
    await expect(none.helper('probe', [])).rejects.toThrow(/service test has no helper/)
    const missing = await f.driver({ helper: './gone.sh' })
    await expect(missing.helper('probe', [])).rejects.toThrow(/helper of test: \.\/gone\.sh .*: no such file/)
  })
})

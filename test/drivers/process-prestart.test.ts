import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { access, chmod, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { alive, type Fixture, fixture, gone, nextEvent } from './fixtures.ts'

/**
 * A service that honours the start gate: loads, says so, waits for the start line on $SUSTAIN_START_FD
 * (exits 0 when the pipe ends without one), then touches its state and runs.
 */
const GATED = `#!/usr/bin/env bash
echo "loaded $$"
if [[ -n \${SUSTAIN_START_FD:-} ]]; then
  read -r line <&"$SUSTAIN_START_FD" || { echo "no start line"; exit 0; }
  echo "start line: $line"
fi
touch "$SUSTAIN_STATE_DIR/healthy" "$SUSTAIN_STATE_DIR/touched"
exec sleep 1000
`

let f: Fixture
beforeEach(async () => {
  f = await fixture()
  await writeFile(join(f.service_dir, 'gated.sh'), GATED)
  await chmod(join(f.service_dir, 'gated.sh'), 0o755)
})
afterEach(async () => {
  await f.cleanup()
})

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  )
const stdout = (text: RegExp) => (r: Record<string, unknown>) =>
  r['stream'] === 'stdout' && text.test(String(r['msg']))
const event = (name: string) => (r: Record<string, unknown>) => r['event'] === name

describe('process driver: prestart (manifest prestart: true)', () => {
  it('holds the loaded command off the state until start, then start releases that same process', async () => {
    const driver = await f.driver({ command: ['./gated.sh'], prestart: true })
    await driver.prestart()
    const held = await f.logged(event('service_prestarted'))
    await f.logged(stdout(/^loaded/))
    expect(driver.running).toBe(false)
    expect(await exists(join(f.state_dir, 'touched'))).toBe(false) // waiting: the state is not touched
    await driver.prestart() // one copy at most
    expect(f.records.filter(event('service_prestarted'))).toHaveLength(1)

    const answering = nextEvent(driver, 'answering')
    await driver.start()
    await answering
    const started = await f.logged(event('service_started'))
    expect(started['prestarted']).toBe(true)
    expect(started['service_pid']).toBe(held['service_pid'])
    expect(driver.pid).toBe(held['service_pid'])
    expect(await exists(join(f.state_dir, 'touched'))).toBe(true)
    await driver.stop('test')
    expect(alive(Number(held['service_pid']))).toBe(false)
  })

  it('a start that comes while a prestart spawns takes that copy (one process holds the state lock)', async () => {
    const driver = await f.driver({ command: ['./gated.sh'], prestart: true })
    const events: string[] = []
    driver.on('event', (e) => events.push(e.kind))
    const prestarting = driver.prestart()
    const answering = nextEvent(driver, 'answering')
    await driver.start()
    await prestarting
    await answering
    const started = await f.logged(event('service_started'))
    const held = await f.logged(event('service_prestarted'))
    expect(started['prestarted']).toBe(true)
    expect(started['service_pid']).toBe(held['service_pid'])
    await driver.prestart() // serving: no second copy
    expect(f.records.filter(event('service_prestarted'))).toHaveLength(1)
    expect(events).toEqual(['answering'])
  })

  /** A prestart-capable driver holding a loaded copy, and the service events it emits. */
  async function holding() {
    const driver = await f.driver({ command: ['./gated.sh'], prestart: true })
    const events: string[] = []
    driver.on('event', (e) => events.push(e.kind))
    await driver.prestart()
    const held = Number((await f.logged(event('service_prestarted')))['service_pid'])
    await f.logged(stdout(/^loaded/))
    return { driver, events, held }
  }

  it('drops a held copy without a service event, and start then spawns anew', async () => {
    const { driver, events, held } = await holding()
    await driver.dropPrestarted()
    expect(await gone(held)).toBe(true)
    expect(events).toEqual([])
    expect(await exists(join(f.state_dir, 'touched'))).toBe(false)

    await driver.start()
    const started = await f.logged(event('service_started'))
    expect(started['prestarted']).toBe(false)
    expect(started['service_pid']).not.toBe(held)
  })

  it('a held copy that dies is no service failure; the next start does not use it', async () => {
    const { driver, events, held } = await holding()
    process.kill(held, 'SIGKILL')
    await f.logged(event('prestarted_exited'))
    expect(events).toEqual([])
    await driver.start()
    const started = await f.logged(event('service_started'))
    expect(started['prestarted']).toBe(false)
    expect(started['service_pid']).not.toBe(held)
  })

  it('close ends a held copy; without prestart in the manifest, prestart does nothing', async () => {
    const plain = await f.driver({ command: ['./gated.sh'] })
    await plain.prestart()
    expect(f.records.some(event('service_prestarted'))).toBe(false)

    const { driver, held } = await holding()
    await driver.close()
    expect(await gone(held)).toBe(true)
  })
})

describe('waitForStart (helpers SDK)', () => {
  const script = `import { waitForStart } from ${JSON.stringify(join(process.cwd(), 'helpers/index.ts'))}
console.log('loaded'); await waitForStart(); console.log('started')`

  function gatedNode() {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      env: { ...process.env, SUSTAIN_START_FD: '3' },
      stdio: ['ignore', 'pipe', 'inherit', 'pipe'],
    })
    let out = ''
    child.stdout!.on('data', (chunk: Buffer) => (out += chunk))
    const gate = child.stdio[3] as NodeJS.WritableStream
    return { child, gate, output: () => out }
  }

  it('resolves on the start line', async () => {
    const { child, gate, output } = gatedNode()
    gate.write('start\n')
    const [code] = await once(child, 'exit')
    expect(code).toBe(0)
    expect(output()).toBe('loaded\nstarted\n')
  })

  it('exits 0 without going on when the pipe ends first', async () => {
    const { child, gate, output } = gatedNode()
    gate.end()
    const [code] = await once(child, 'exit')
    expect(code).toBe(0)
    expect(output()).toBe('loaded\n')
  })
})

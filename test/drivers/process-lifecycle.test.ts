import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { alive, type Fixture, fixture, gone, nextEvent } from './fixtures.ts'

let f: Fixture
beforeEach(async () => {
  f = await fixture()
})
afterEach(async () => {
  await f.cleanup()
})

async function waitForFile(path: string, lines: number): Promise<number[]> {
  for (let i = 0; i < 500; i++) {
    const text = await readFile(path, 'utf8').catch(() => '')
    const pids = text.split('\n').filter(Boolean).map(Number)
    if (pids.length >= lines) return pids
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error(`${path} never had ${lines} lines`)
}

describe('process driver lifecycle', () => {
  it('starts in its own process group with the context env, creates the state dir, logs output, stops', async () => {
    const driver = await f.driver({ helper: undefined })
    const answering = nextEvent(driver, 'answering')
    await driver.start()
    expect(driver.running).toBe(true)
    await answering // without a helper: answering once spawned
    const pid = driver.pid!
    expect(alive(pid)).toBe(true)
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    const pgrp = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2])
    expect(pgrp).toBe(pid)
    await expect(driver.start()).rejects.toThrow(/already running/)

    for (let i = 0; i < 500 && !f.records.some((r) => r['msg'] === 'stderr line'); i++) {
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    // Read only once the service has written output: right after spawn, /proc/PID/environ can still be
    // empty while the exec is under way (seen once in CI).
    const environ = (await readFile(`/proc/${pid}/environ`, 'utf8')).split('\0')
    expect(environ).toContain(`SUSTAIN_STATE_DIR=${f.state_dir}`)
    expect(environ).toContain('SUSTAIN_PORT=2500')
    expect(environ).toContain(`SUSTAIN_SERVICE_DIR=${f.service_dir}`)
    let exited = 0
    driver.on('event', (event) => {
      if (event.kind === 'exited') exited++
    })
    await driver.stop('test')
    expect(driver.running).toBe(false)
    expect(alive(pid)).toBe(false)
    expect(exited).toBe(0) // a deliberate stop is not a failure
    await driver.stop('again') // idempotent
    expect(
      f.records.some((r) => r['stream'] === 'stdout' && /starting in mode plain/.test(String(r['msg']))),
    ).toBe(true)
    expect(f.records.some((r) => r['stream'] === 'stderr' && r['msg'] === 'stderr line')).toBe(true)
  })

  it('a killed service emits exited at once', async () => {
    const driver = await f.driver({ helper: undefined })
    await driver.start()
    const pid = driver.pid!
    const exited = nextEvent(driver, 'exited')
    const killed_at = performance.now()
    process.kill(pid, 'SIGKILL')
    const event = await exited
    const elapsed_ms = performance.now() - killed_at
    expect(event).toEqual({ kind: 'exited', code: null, signal: 'SIGKILL' })
    expect(elapsed_ms).toBeLessThan(100)
    expect(driver.running).toBe(false)
    // It can be started again in place.
    await driver.start()
    expect(driver.pid).not.toBe(pid)
  })

  it('stop reaches the whole group; a service ignoring SIGTERM is SIGKILLed after stop_timeout_ms', async () => {
    const driver = await f.driver({ helper: undefined, env: { SERVICE_MODE: 'stubborn' } })
    await driver.start()
    const leader = driver.pid!
    const [child] = await waitForFile(join(f.state_dir, 'children'), 1)
    expect(alive(child!)).toBe(true)
    const started = performance.now()
    await driver.stop('test')
    const took_ms = performance.now() - started
    expect(took_ms).toBeGreaterThanOrEqual(290) // waited stop_timeout_ms (300) for SIGTERM
    expect(alive(leader)).toBe(false) // the leader is reaped by the driver itself
    expect(await gone(child!)).toBe(true)
    expect(f.records.some((r) => r['event'] === 'service_kill')).toBe(true)
  })

  it('close leaves no child running (service, its children, a helper in progress)', async () => {
    const driver = await f.driver({ env: { SERVICE_MODE: 'children' } })
    await driver.start()
    const leader = driver.pid!
    const children = await waitForFile(join(f.state_dir, 'children'), 2)
    const slow = driver.helper('slow', [], { timeout_ms: 30_000 }).catch((error: Error) => error)
    const [helper_child] = await waitForFile(`${f.helper_log}.slowpid`, 1)
    await driver.close()
    expect(await slow).toBeInstanceOf(Error)
    expect(String(await slow)).toMatch(/helper slow: the driver closed/)
    expect(alive(leader)).toBe(false)
    for (const pid of [...children, helper_child!]) expect(await gone(pid)).toBe(true)
    await expect(driver.start()).rejects.toThrow(/closed/)
  })

  it('when the service leader dies, what it left in its group dies too', async () => {
    const driver = await f.driver({ helper: undefined, env: { SERVICE_MODE: 'children' } })
    await driver.start()
    const children = await waitForFile(join(f.state_dir, 'children'), 2)
    const exited = nextEvent(driver, 'exited')
    process.kill(driver.pid!, 'SIGKILL')
    await exited
    for (const pid of children) expect(await gone(pid)).toBe(true)
  })
})

describe('process driver fence', () => {
  it('never starts a second copy over a state directory whose lock another run holds', async () => {
    await mkdir(dirname(f.state_dir), { recursive: true })
    const lock = join(dirname(f.state_dir), '.state.lock')
    const holder = spawn('flock', ['-x', lock, 'sleep', '1000'], { stdio: 'ignore', detached: true })
    try {
      // flock holds the lock once it runs its command (a child).
      for (let i = 0; i < 500; i++) {
        const children = await readFile(`/proc/${holder.pid}/task/${holder.pid}/children`, 'utf8')
        if (children.trim()) break
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
      const driver = await f.driver({ helper: undefined })
      const exited = nextEvent(driver, 'exited')
      await driver.start()
      expect(await exited).toMatchObject({ code: 75 })
      expect(f.records.some((r) => /state directory in use/.test(String(r['msg'])))).toBe(true)
      expect(f.records.some((r) => /starting in mode/.test(String(r['msg'])))).toBe(false) // never ran
    } finally {
      const gone = once(holder, 'exit')
      process.kill(-holder.pid!, 'SIGKILL')
      await gone
    }
  })
})

describe('process driver probes', () => {
  it('answering after the first good probe, probe-failed when it fails, answering again when it recovers', async () => {
    const driver = await f.driver()
    const events: string[] = []
    driver.on('event', (event) => events.push(event.kind))
    await driver.start()
    // Not healthy yet: no event.
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(events).toEqual([])
    const answering = nextEvent(driver, 'answering')
    await writeFile(join(f.state_dir, 'healthy'), '')
    await answering
    const logged = f.records.find((r) => r['event'] === 'service_answering')
    expect(logged?.['start_to_answering_ms']).toBeGreaterThan(100)

    const failed = nextEvent(driver, 'probe-failed')
    await rm(join(f.state_dir, 'healthy'))
    expect((await failed).reason).toMatch(/probe exited 1/)
    const again = nextEvent(driver, 'answering')
    await writeFile(join(f.state_dir, 'healthy'), '')
    await again
    expect(events).toEqual(['answering', 'probe-failed', 'answering'])
  })
})

import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const run = promisify(execFile)
const BIN = new URL('../../bin/sustain.js', import.meta.url).pathname

describe('sustain demo (the README main command)', () => {
  it('fails over after a SIGKILL and loses only mail acknowledged after the newest replicated snapshot', async () => {
    const { stdout } = await run(process.execPath, [BIN, 'demo', '--nodes', '3', '--headless'], {
      timeout: 150_000,
    })
    const lines = stdout.trim().split('\n')
    const summary = JSON.parse(lines.at(-1)!)
    expect(summary.acknowledged).toBeGreaterThan(10)
    expect(summary.new_server).not.toBe(summary.killed)
    expect(summary.failover_ms).toBeGreaterThan(0)
    expect(summary.lost_acknowledged).toBe(summary.lost_within_rpo)
    // The client only knows one front door; it was held across the failover, never refused.
    expect(summary.client_address).toMatch(/^127\.0\.1\.\d+:\d+$/)
    expect(summary.refused).toBe(0)
    expect(summary.client_outage_ms).toBeGreaterThan(0)
    expect(summary.client_outage_ms).toBeLessThan(10_000)
    expect(summary.held_max_ms).toBeGreaterThan(0)
    expect(stdout).toMatch(/detected after \d+ ms/)
    expect(stdout).toMatch(/service answering at/)
  }, 180_000)
})

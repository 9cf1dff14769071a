import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const run = promisify(execFile)
const BIN = new URL('../../bin/sustain.js', import.meta.url).pathname

describe('sustain demo (the README main command)', () => {
  it('fails over after a SIGKILL; with output commit (k=1, the default) no acknowledged mail is lost', async () => {
    const { stdout } = await run(process.execPath, [BIN, 'demo', '--nodes', '3', '--headless'], {
      timeout: 150_000,
    })
    const lines = stdout.trim().split('\n')
    const summary = JSON.parse(lines.at(-1)!)
    expect(summary.acknowledged).toBeGreaterThan(10)
    expect(summary.new_server).not.toBe(summary.killed)
    expect(summary.failover_ms).toBeGreaterThan(0)
    // Judged by the demo's client against the new server's mailbox; the restored snapshot excuses nothing.
    expect(summary.output_commit).toBe(1)
    expect(summary.lost_within_rpo).toBeNull()
    expect(summary.lost_acknowledged).toBe(0)
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

import { afterAll, describe, expect, it } from 'vitest'
import { BIN, SESSION, screen, screenWhere, scrollback, TERMINAL_ENV, tmux } from './tmux.ts'

afterAll(async () => {
  await tmux('kill-server').catch(() => {})
})

describe('sustain demo in a terminal (tmux, 80x24)', () => {
  it('runs the scenario inside the UI, then leaves the story and the summary line in the terminal', async () => {
    // The shell stays after the demo so its output can be read; kill-server ends it.
    const command = `${TERMINAL_ENV} ${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} demo --nodes 3; echo "EXIT=$?"; sleep 120`
    await tmux('new-session', '-d', '-x', '80', '-y', '24', '-s', SESSION, command)
    await screenWhere(
      (s) => s.includes('sustain demo') && s.includes('▶ starting a local DHT testnet'),
      'the demo UI',
    )
    const failover = await screenWhere(
      (s) => /SIGKILL node-\d/.test(s) || /server node-\d suspected/.test(s),
      'the kill',
      90_000,
    )
    expect(failover).toContain('Timeline')
    const done = await screenWhere((s) => s.includes('press q to quit'), 'the end of the scenario', 120_000)
    expect(done).toMatch(/service answering/)
    expect(done).toMatch(/server: node-\d/)
    await tmux('send-keys', '-t', SESSION, 'q')
    const after = await screenWhere((s) => s.includes('EXIT='), 'the demo command to end', 30_000)
    const text = await scrollback()
    const json = text.match(/\{"nodes":3.*?"data_dir":null\}/)
    expect(json, `no summary line in:\n${text}`).not.toBeNull()
    const summary = JSON.parse(json![0]!)
    expect(summary.new_server).not.toBe(summary.killed)
    expect(after).toContain('EXIT=0')
    expect(await screen()).not.toContain('press q to quit')
  }, 240_000)
})

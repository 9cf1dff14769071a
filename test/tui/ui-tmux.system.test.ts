import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { LocalFederation } from '../../src/demo/local-federation.ts'
import { BIN, SESSION, screenWhere, TERMINAL_ENV, tmux } from './tmux.ts'

/** The header's server has a row that says `self` or `up`. */
function serverIsUp(text: string): boolean {
  const server = /server: (node-\d)/.exec(text)?.[1]
  if (!server) return false
  const row = text.split('\n').find((l) => new RegExp(`^[ >] ${server}[* ]`).test(l))
  return row !== undefined && /\bself\b|\bup\b/.test(row)
}

let federation: LocalFederation | null = null
let dir = ''

afterAll(async () => {
  await tmux('kill-server').catch(() => {})
  await federation?.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe('sustain ui in a terminal (tmux, 80x24) on a real federation', () => {
  it('shows the new server after the server is killed, and reconnects when its own node comes back', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sustain-ui-e2e-'))
    federation = new LocalFederation({ dir, nodes: 3, base_port: 2680 })
    await federation.start()
    const first = await federation.server(60_000)
    const watched = federation.nodes.find((n) => n !== first)!
    const command = [
      TERMINAL_ENV,
      `${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} ui --data ${JSON.stringify(watched.data_dir)}`,
    ].join(' ')
    await tmux('new-session', '-d', '-x', '80', '-y', '24', '-s', SESSION, command)

    const before = await screenWhere((s) => s.includes(`server: ${first.name}`), `${first.name} serving`)
    const lines = before.trimEnd().split('\n')
    expect(lines.length).toBeLessThanOrEqual(24)
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(80)
    expect(before).toContain('q quit')

    const killed_ms = Date.now()
    first.signal('SIGKILL')
    const after = await screenWhere(
      (s) =>
        /server: node-\d/.test(s) && !s.includes(`server: ${first.name}`) && s.includes('service answering'),
      'a new server answering',
    )
    expect(after).toMatch(new RegExp(`server ${first.name} suspected|${first.name} unreachable`))
    const now_serving = /server: (node-\d)/.exec(after)![1]!
    expect(now_serving).not.toBe(first.name)
    // The figure for the report: SIGKILL to the new server answering on screen (pane read every 200 ms).
    console.info(
      `sustain ui e2e: ${now_serving} answering on screen ${Date.now() - killed_ms} ms after SIGKILL`,
    )

    // The node the UI watches dies and comes back: the UI says so and picks up again.
    watched.signal('SIGKILL')
    await screenWhere((s) => s.includes('local node not answering'), 'the lost node')
    await watched.waitExit(10_000)
    watched.start()
    // Fresh, not the last view from before the outage: the server the header names is up (or is itself).
    const back = await screenWhere(
      (s) => s.includes('reconnected to the local node') && !s.includes('not answering') && serverIsUp(s),
      'the reconnection and a fresh view',
    )
    expect(back).toContain(`${watched.name}*`)

    // Resizing redraws to the new size: the key line moves to the new bottom.
    await tmux('resize-window', '-t', SESSION, '-x', '100', '-y', '30')
    await screenWhere((s) => {
      const rows = s.split('\n')
      return rows.length >= 29 && (rows[28] ?? '').includes('q quit')
    }, 'the 100x30 layout')

    await tmux('send-keys', '-t', SESSION, 'q')
    const deadline = Date.now() + 10_000
    let alive = true
    for (let i = 0; i < 100 && alive && Date.now() < deadline; i++) {
      alive = await tmux('has-session', '-t', SESSION).then(
        () => true,
        () => false,
      )
      if (alive) await new Promise((resolve) => setTimeout(resolve, 100))
    }
    expect(alive).toBe(false)
  }, 180_000)
})

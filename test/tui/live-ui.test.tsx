import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { render } from 'ink-testing-library'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { LiveUi } from '../../src/tui/components/LiveUi.tsx'
import { DemoFeed } from '../../src/tui/demo-feed.ts'
import { makeTheme } from '../../src/tui/theme.ts'
import { FakeNode } from './fake-node.ts'
import { KEYS, snap, status } from './recorded-stream.ts'

type Rendered = ReturnType<typeof render>

/** Resolves with the first frame Ink writes that satisfies `match` (or the current one). */
function frameWhere(r: Rendered, match: (frame: string) => boolean, timeout_ms = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const original = r.stdout.write
    const finish = (error: Error | null, frame = '') => {
      clearTimeout(timer)
      r.stdout.write = original
      if (error) reject(error)
      else resolve(frame)
    }
    const timer = setTimeout(
      () => finish(new Error(`no matching frame within ${timeout_ms} ms; last:\n${r.lastFrame()}`)),
      timeout_ms,
    )
    r.stdout.write = (frame: string) => {
      original(frame)
      if (match(frame)) finish(null, frame)
    }
    const now = r.lastFrame() ?? ''
    if (match(now)) finish(null, now)
  })
}

function waitUntil(check: () => boolean, what: string, timeout_ms = 5000): Promise<void> {
  const deadline = Date.now() + timeout_ms
  return new Promise((resolve, reject) => {
    const poll = () => {
      if (check()) resolve()
      else if (Date.now() > deadline) reject(new Error(`timed out waiting for ${what}`))
      else setTimeout(poll, 10)
    }
    poll()
  })
}

const peers = (server_role: 'server' | 'candidate' = 'server') => [
  {
    key: KEYS.n0,
    name: 'node-0',
    priority: 30,
    role: server_role,
    term: 1,
    snapshot: snap(KEYS.n0, 1, 5),
    health: 'ok' as const,
  },
  { key: KEYS.n2, name: 'node-2', priority: 10, role: 'candidate' as const, term: 1 },
]
const steady = status({ role: 'candidate', term: 1, server: KEYS.n0, snapshot: snap(KEYS.n0, 1, 5) }, peers())

let dir = ''
let node: FakeNode
let ui: Rendered | null = null

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sustain-tui-'))
  node = new FakeNode(join(dir, 'control.sock'), steady)
  await node.start()
})

afterEach(async () => {
  ui?.unmount()
  ui = null
  await node.kill()
  await rm(dir, { recursive: true, force: true })
})

const mount = (props: { socket_path: string | null; demo?: DemoFeed }) => {
  ui = render(
    <LiveUi
      socket_path={props.socket_path}
      theme={makeTheme(false)}
      title={props.demo ? 'sustain demo' : 'sustain ui'}
      interval_ms={100}
      retry_ms={50}
      {...(props.demo ? { demo: props.demo } : {})}
    />,
  )
  return ui
}

describe('LiveUi on a control socket', () => {
  it('watches the node and shows notices as they come', async () => {
    const r = mount({ socket_path: node.path })
    await frameWhere(r, (f) => f.includes('server: node-0'))
    expect(node.requests[0]).toEqual({ cmd: 'watch', interval_ms: 100 })
    node.push({
      ok: true,
      notice: {
        kind: 'timeline',
        name: 'server_suspected',
        fields: { server: KEYS.n0, reason: 'closed' },
        role: 'candidate',
        term: 1,
      },
    })
    await frameWhere(r, (f) => f.includes('server node-0 suspected (closed)'))
  })

  it('s asks for a snapshot; l asks for confirmation and y leaves; n cancels', async () => {
    const r = mount({ socket_path: node.path })
    await frameWhere(r, (f) => f.includes('server: node-0'))
    r.stdin.write('s')
    await waitUntil(() => node.requests.some((q) => q.cmd === 'snapshot'), 'the snapshot request')
    await frameWhere(r, (f) => f.includes('snapshot accepted by the node'))
    r.stdin.write('l')
    await frameWhere(r, (f) => f.includes('Leave the federation?'))
    r.stdin.write('n')
    await frameWhere(r, (f) => f.includes('leave cancelled') && !f.includes('Leave the federation?'))
    expect(node.requests.some((q) => q.cmd === 'leave')).toBe(false)
    r.stdin.write('l')
    await frameWhere(r, (f) => f.includes('Leave the federation?'))
    r.stdin.write('y')
    await waitUntil(() => node.requests.some((q) => q.cmd === 'leave'), 'the leave request')
  })

  it('arrows select a node and show its details', async () => {
    const r = mount({ socket_path: node.path })
    await frameWhere(r, (f) => /Selected node-0/.test(f))
    r.stdin.write('\u001B[B')
    await frameWhere(r, (f) =>
      /Selected node-1 b1b1b1b1 · priority 20 · candidate at term 1 · this node/.test(f),
    )
    r.stdin.write('\u001B[B')
    await frameWhere(r, (f) => f.includes('> node-2') && /Selected node-2 c2c2c2c2/.test(f))
    r.stdin.write('\u001B[A')
    await frameWhere(r, (f) => f.includes('> node-1*'))
  })

  it('says when the local node dies and reconnects when it returns', async () => {
    const r = mount({ socket_path: node.path })
    await frameWhere(r, (f) => f.includes('server: node-0'))
    await node.kill()
    await frameWhere(r, (f) => f.includes('local node not answering') && f.includes('lost the local node'))
    node = new FakeNode(
      node.path,
      status(
        { role: 'server', term: 2, server: KEYS.n1, snapshot: snap(KEYS.n1, 2, 1), health: 'ok' },
        peers('candidate'),
      ),
    )
    await node.start()
    const back = await frameWhere(r, (f) => f.includes('reconnected to the local node'))
    expect(back).not.toContain('not answering')
    await frameWhere(r, (f) => f.includes('server: node-1 (this node)'))
  })

  it('in a demo, attaches when told, shows the narration, and q waits for the end of the scenario', async () => {
    const feed = new DemoFeed()
    feed.say('starting a local DHT testnet and 3 node processes')
    const r = mount({ socket_path: null, demo: feed })
    const waiting = await frameWhere(r, (f) => f.includes('▶ starting a local DHT testnet'))
    expect(waiting).toContain("connecting to the demo's nodes (starting)")
    expect(waiting).toContain('the demo runs until its report')
    feed.attach(node.path, 'node-1')
    await frameWhere(r, (f) => f.includes('server: node-0'))
    feed.say('SIGKILL node-0 (pid 1) and its service')
    await frameWhere(r, (f) => f.includes('▶ SIGKILL node-0'))
    r.stdin.write('q')
    await frameWhere(r, (f) => f.includes('the demo is still running'))
    feed.finish('40 acknowledged, 0 lost')
    const over = await frameWhere(
      r,
      (f) => f.includes('▶ 40 acknowledged, 0 lost') && f.includes('press q to quit'),
    )
    expect(over).not.toContain('the demo runs until its report')
    // Detached: the federation's teardown does not turn the last view into "not answering".
    await node.kill()
    const after = await frameWhere(r, (f) => f.includes('press q'))
    expect(after).not.toContain('lost the local node')
  })
})

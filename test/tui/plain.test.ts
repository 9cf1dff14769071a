import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { runPlain } from '../../src/tui/plain.ts'
import { FakeNode } from './fake-node.ts'
import { KEYS, snap, status } from './recorded-stream.ts'

const peers = [
  { key: KEYS.n0, name: 'node-0', priority: 30, role: 'server' as const, term: 1, health: 'ok' as const },
  { key: KEYS.n2, name: 'node-2', priority: 10, role: 'candidate' as const, term: 1 },
]

let dir = ''
let node: FakeNode

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sustain-plain-'))
  node = new FakeNode(
    join(dir, 'control.sock'),
    status({ role: 'candidate', term: 1, server: KEYS.n0, snapshot: snap(KEYS.n0, 1, 5) }, peers),
  )
  await node.start()
})

afterEach(async () => {
  await node.kill()
  await rm(dir, { recursive: true, force: true })
})

/** Collects what the fallback prints and resolves when it contains `text`. */
function output() {
  const out = new PassThrough()
  let text = ''
  const waiters: Array<[string, () => void]> = []
  out.on('data', (chunk: Buffer) => {
    text += chunk.toString()
    for (const [want, resolve] of waiters) if (text.includes(want)) resolve()
  })
  return {
    out,
    text: () => text,
    until: (want: string, timeout_ms = 5000) =>
      new Promise<void>((resolve, reject) => {
        if (text.includes(want)) return resolve()
        const timer = setTimeout(
          () => reject(new Error(`never printed "${want}"; printed:\n${text}`)),
          timeout_ms,
        )
        waiters.push([
          want,
          () => {
            clearTimeout(timer)
            resolve()
          },
        ])
      }),
  }
}

describe('plain text fallback (stdout not a terminal)', () => {
  it('prints the status table when the federation changes, timeline lines, and the reconnection', async () => {
    const printed = output()
    const plain = runPlain({ socket_path: node.path, out: printed.out, interval_ms: 100, retry_ms: 50 })
    try {
      await printed.until('server: a0a0a0a0')
      expect(printed.text()).toMatch(/node-0\s+a0a0a0a0\s+30\s+server/)
      node.push({ ok: true, status: node.current })
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
      await printed.until('server node-0 suspected (closed)')
      // An unchanged status is not printed twice.
      expect(printed.text().split('server: a0a0a0a0').length).toBe(2)
      expect(printed.text()).not.toContain('\u001b[')
      await node.kill()
      await printed.until('lost the local node')
      node = new FakeNode(
        node.path,
        status(
          { role: 'server', term: 2, server: KEYS.n1, snapshot: snap(KEYS.n1, 2, 1), health: 'ok' },
          peers,
        ),
      )
      await node.start()
      await printed.until('reconnected to the local node')
      await printed.until('server: this node (node-1)')
    } finally {
      plain.close()
    }
    await plain.done
  })
})

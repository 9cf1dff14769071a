import type { ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { NodeStatus } from '../../src/runtime/status.ts'
import { type Lab, startLab } from './lab.ts'

const ROOT = new URL('../..', import.meta.url).pathname
const BIN = join(ROOT, 'bin', 'sustain.js')

/** The README's "Three PCs on a LAN" commands, grouped by the `# pcN` comment above them. */
async function walkThrough(): Promise<{ pc: number; line: string }[]> {
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8')
  const section = readme.split('## Three PCs on a LAN')[1]?.split('\n## ')[0]
  const block = section?.match(/```sh\n([\s\S]*?)```/)?.[1]
  if (!block) throw new Error('README.md has no "Three PCs on a LAN" sh block')
  let pc = 0
  const steps: { pc: number; line: string }[] = []
  for (const line of block.split('\n')) {
    const heading = /^# pc(\d)/.exec(line)
    if (heading) pc = Number(heading[1])
    else if (line.startsWith('npx sustain ')) steps.push({ pc, line })
  }
  return steps
}

let lab: Lab | null = null
let dir = ''
afterAll(async () => {
  await lab?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe('three PCs on a LAN, no internet, as the README says (network namespaces)', () => {
  it('the first node serves the DHT bootstrap; the others join by invite; pc2 takes over when pc1 dies', async () => {
    const steps = await walkThrough()
    expect(steps.map((s) => s.pc)).toEqual([1, 1, 1, 2, 2, 3, 3, 1])
    lab = await startLab(3)
    dir = await mkdtemp(join(tmpdir(), 'sustain-lan-'))
    const home = (pc: number) => join(dir, `pc${pc}`)
    for (const pc of [1, 2, 3]) await mkdir(home(pc))
    // The PCs' addresses become the lab's; `npx sustain` is this checkout's bin; each PC has its own
    // home (~/sustain); invite.txt is "copied" by sharing the directory the commands run in.
    const command = (line: string) =>
      line
        .replace(/192\.168\.1\.1(\d)/g, (_, k: string) => lab!.hosts[Number(k)]!.address)
        .replace(/^npx sustain /, `${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} `)
        .replace(/ examples\/mail /, ` ${join(ROOT, 'examples', 'mail')} `)
    const bash = (pc: number, line: string) => [
      'env',
      `HOME=${home(pc)}`,
      'bash',
      '-c',
      `cd ${dir} && ${command(line)}`,
    ]
    const joins: ChildProcess[] = []
    let status_out = ''
    for (const { pc, line } of steps) {
      if (/^npx sustain join /.test(line)) {
        const child = lab.spawn(pc - 1, bash(pc, line))
        child.stderr!.resume()
        joins[pc] = child
      } else if (/^npx sustain status /.test(line)) {
        status_out = await waitForStatus(() => lab!.exec(pc - 1, bash(pc, `${line} --json`)))
      } else {
        await lab.exec(pc - 1, bash(pc, line))
      }
    }
    const seen = JSON.parse(status_out) as NodeStatus
    expect(seen.node.name).toBe('pc1')
    expect(seen.node.role).toBe('server')
    expect(
      seen.peers
        .filter((p) => p.reachable)
        .map((p) => p.name)
        .sort(),
    ).toEqual(['pc2', 'pc3'])
    const config = await readFile(join(home(2), 'sustain', 'sustain.yaml'), 'utf8')
    expect(config).toContain(`- ${lab.hosts[0]!.address}:49737`) // from the invite, host:port

    // pc1 (the only bootstrap node) dies: pc2 and pc3, connected already, elect pc2.
    process.kill(-joins[1]!.pid!, 'SIGKILL')
    const after = JSON.parse(
      await waitForStatus(
        () => lab!.exec(1, bash(2, 'npx sustain status --data ~/sustain --json')),
        (s) => s.node.role === 'server',
      ),
    ) as NodeStatus
    expect(after.node.name).toBe('pc2')
    expect(after.peers.find((p) => p.name === 'pc3')?.reachable).toBe(true)
  })
})

/** Asks for the status until every peer is reachable and a server is known (or `done` holds), bounded. */
async function waitForStatus(
  ask: () => Promise<{ stdout: string }>,
  done = (s: NodeStatus) =>
    s.node.server !== null && s.peers.length === 2 && s.peers.every((p) => p.reachable),
  timeout_ms = 90_000,
): Promise<string> {
  const deadline = Date.now() + timeout_ms
  let last = ''
  for (let i = 0; i < 500 && Date.now() < deadline; i++) {
    last = await ask().then(
      (r) => r.stdout,
      (e: Error) => e.message,
    )
    try {
      if (done(JSON.parse(last) as NodeStatus)) return last
    } catch {} // not running yet: the node is still starting
    await new Promise((resolve) => setTimeout(resolve, 500))
  }
  throw new Error(`the federation did not form within ${timeout_ms} ms; last status: ${last}`)
}

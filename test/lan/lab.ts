import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { promisify } from 'node:util'
import { requireTools } from '../system/requirements.ts'

const run = promisify(execFile)

/** One "PC": a network namespace held by a sleeping process, with one address on the lab's bridge. */
export interface LabHost {
  pid: number
  address: string
}

export interface Lab {
  hosts: LabHost[]
  /** Runs argv inside host i's network namespace; resolves with its output (rejects on failure). */
  exec(i: number, argv: string[]): Promise<{ stdout: string; stderr: string }>
  /** Starts argv inside host i's namespace, in a process group of its own (ended by close()). */
  spawn(i: number, argv: string[]): ChildProcess
  close(): Promise<void>
}

const SUBNET = '10.77.0'
const BRIDGE = 'sustain-lab'

/**
 * A LAN of `count` hosts in network namespaces on one bridge (shared/notes/netns.md), created inside the
 * namespace test/loopback-only.sh gives the suite: the bridge and the addresses exist only there, with
 * no route out, so nothing in the lab reaches this machine's network or is reached from it.
 */
export async function startLab(count: number): Promise<Lab> {
  requireTools('ip', 'nsenter')
  if (process.getuid?.() !== 0) throw new Error('the LAN lab needs root (network namespaces)')
  if (process.env['SUSTAIN_IN_NETNS'] !== '1') {
    throw new Error('the LAN lab runs only inside test/loopback-only.sh: npm run test:system')
  }
  const { stdout: routes } = await run('ip', ['route'])
  if (/default/.test(routes)) throw new Error(`the lab's outer namespace has a route out:\n${routes}`)
  const holders: ChildProcess[] = []
  const groups: ChildProcess[] = []
  /** SIGKILL a child (its whole process group when it leads one) and wait for it. */
  const end = async (child: ChildProcess, group: boolean) => {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
    const exited = once(child, 'exit')
    try {
      process.kill(group ? -child.pid : child.pid, 'SIGKILL')
    } catch {}
    await exited
  }
  const close = async () => {
    for (const child of groups) await end(child, true)
    for (const child of holders) await end(child, false) // the namespaces and their veths go with them
    await run('ip', ['link', 'del', BRIDGE]).catch(() => {})
  }
  try {
    await run('ip', ['link', 'add', BRIDGE, 'type', 'bridge'])
    await run('ip', ['link', 'set', BRIDGE, 'up'])
    const hosts: LabHost[] = []
    for (let i = 0; i < count; i++) {
      const holder = spawn('unshare', ['-n', 'sleep', '3600'], { stdio: 'ignore' })
      holders.push(holder)
      await once(holder, 'spawn')
      const pid = holder.pid!
      // unshare execs sleep once the namespace exists: wait until the holder's namespace differs from ours.
      for (let tries = 0; ; tries++) {
        const [ours, theirs] = await Promise.all([
          run('readlink', ['/proc/self/ns/net']),
          run('readlink', [`/proc/${pid}/ns/net`]),
        ])
        if (ours.stdout !== theirs.stdout) break
        if (tries > 200) throw new Error('a lab namespace did not appear')
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
      const address = `${SUBNET}.${i + 1}`
      const [inside, outside] = [`lab${i}`, `lab${i}-br`]
      await run('ip', ['link', 'add', inside, 'type', 'veth', 'peer', 'name', outside])
      await run('ip', ['link', 'set', outside, 'master', BRIDGE, 'up'])
      await run('ip', ['link', 'set', inside, 'netns', String(pid)])
      const inNs = (...argv: string[]) => run('nsenter', ['-t', String(pid), '-n', ...argv])
      await inNs('ip', 'link', 'set', 'lo', 'up')
      await inNs('ip', 'addr', 'add', `${address}/24`, 'dev', inside)
      await inNs('ip', 'link', 'set', inside, 'up')
      hosts.push({ pid, address })
    }
    return {
      hosts,
      exec: (i, argv) =>
        run('nsenter', ['-t', String(hosts[i]!.pid), '-n', ...argv], { timeout: 60_000, encoding: 'utf8' }),
      spawn: (i, argv) => {
        const child = spawn('nsenter', ['-t', String(hosts[i]!.pid), '-n', ...argv], {
          detached: true,
          stdio: ['ignore', 'ignore', 'pipe'],
        })
        groups.push(child)
        return child
      },
      close,
    }
  } catch (error) {
    await close()
    throw error
  }
}

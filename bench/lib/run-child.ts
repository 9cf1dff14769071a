import { spawn } from 'node:child_process'

/** Children started through here, ended with their process groups if the runner is told to stop. */
const running = new Set<number>()
let handlersInstalled = false

function installHandlers(): void {
  if (handlersInstalled) return
  handlersInstalled = true
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      for (const pid of running) {
        try {
          process.kill(-pid, 'SIGTERM') // the child's whole group: its nodes, services and their helpers
        } catch {}
      }
      process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGHUP' ? 1 : 15))
    })
  }
}

/**
 * Runs a command in a process group of its own, output passed through, and resolves with its exit
 * code. If this process gets SIGINT/SIGTERM/SIGHUP, the group gets SIGTERM before we exit.
 */
export async function runInGroup(command: string, args: readonly string[], cwd: string): Promise<number> {
  installHandlers()
  const child = spawn(command, args, { cwd, stdio: 'inherit', detached: true })
  if (child.pid === undefined) throw new Error(`could not start ${command}`)
  running.add(child.pid)
  try {
    return await new Promise<number>((resolve, reject) => {
      child.once('error', reject)
      child.once('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)))
    })
  } finally {
    running.delete(child.pid)
  }
}

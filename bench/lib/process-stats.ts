import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'

export interface RunStats {
  seconds: number
  /** Peak resident set size of the command, MiB (from `/usr/bin/time -v`), or undefined without it. */
  peak_rss_mib: number | undefined
  stdout: string
  stderr: string
}

const TIME = '/usr/bin/time'

/** Run a command to completion, timing it and (with GNU time present) reading its peak RSS. */
export async function runMeasured(command: string, args: readonly string[]): Promise<RunStats> {
  const withTime = existsSync(TIME)
  const started_ms = performance.now()
  const child = spawn(withTime ? TIME : command, withTime ? ['-v', command, ...args] : [...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (data: Buffer) => {
    stdout += data.toString()
  })
  child.stderr.on('data', (data: Buffer) => {
    stderr += data.toString()
  })
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', resolve)
  })
  const seconds = (performance.now() - started_ms) / 1000
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${code}: ${stderr.slice(-2000)}`)
  const match = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr)
  return { seconds, peak_rss_mib: match ? Number(match[1]) / 1024 : undefined, stdout, stderr }
}

/** Peak RSS of the current process (all its threads), MiB. */
export function selfPeakRssMib(): number {
  return process.resourceUsage().maxRSS / 1024
}

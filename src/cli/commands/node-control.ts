import type { Command } from 'commander'
import { defaultDataDir, nodePaths } from '../../config/data-dir.ts'
import { controlRequest, NodeNotRunning } from '../../runtime/control-client.ts'
import { formatStatus } from '../../runtime/format-status.ts'
import type { LeaveOutcome, NodeNotice } from '../../runtime/node.ts'
import type { NodeStatus } from '../../runtime/status.ts'
import { CliError } from '../../util/cli-error.ts'

async function ask(
  data: string,
  request: Parameters<typeof controlRequest>[1],
  onLine: (l: Record<string, unknown>) => void,
) {
  try {
    await controlRequest(nodePaths(data).socket, request, onLine)
  } catch (error) {
    if (error instanceof NodeNotRunning)
      throw new CliError(`${error.message}: start it with \`sustain join\``)
    throw error
  }
}

function describe(notice: NodeNotice): string | null {
  if (notice.kind === 'exit') return 'node stopped'
  if (notice.kind === 'progress')
    return `${notice.what} ${notice.id}: ${notice.bytes_done}/${notice.bytes_total} bytes`
  if (notice.name === 'role_changed') return `role ${notice.fields.from} -> ${notice.fields.to}`
  return `${notice.name.replace(/_/g, ' ')} ${JSON.stringify(notice.fields)}`
}

export function registerNodeControl(program: Command): void {
  program
    .command('status')
    .description('show the federation as the local node sees it: nodes, roles, terms, snapshots, the server')
    .option('-d, --data <dir>', 'node data directory', defaultDataDir())
    .option('--json', 'print JSON')
    .action(async (options: { data: string; json?: boolean }) => {
      await ask(options.data, { cmd: 'status' }, (line) => {
        const status = line.status as NodeStatus
        process.stdout.write(options.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status))
      })
    })

  program
    .command('snapshot')
    .description('take a snapshot now (on the server)')
    .option('-d, --data <dir>', 'node data directory', defaultDataDir())
    .action(async (options: { data: string }) => {
      await ask(options.data, { cmd: 'snapshot' }, () => {})
      process.stdout.write('snapshot requested\n')
    })

  program
    .command('leave')
    .description('leave the federation; a server first hands over (final snapshot, successor answering)')
    .option('-d, --data <dir>', 'node data directory', defaultDataDir())
    .action(async (options: { data: string }) => {
      let outcome: LeaveOutcome | null = null
      let stopped = false
      await ask(options.data, { cmd: 'leave' }, (line) => {
        const notice = line.notice as NodeNotice | undefined
        if (!notice) return
        const text = describe(notice)
        if (text) process.stdout.write(`${text}\n`)
        if (notice.kind === 'exit') {
          stopped = true
          outcome = notice.leave ?? null
        }
      })
      const result = outcome as LeaveOutcome | null
      if (!stopped)
        throw new CliError('the node went away without reporting its leave (killed or crashed?); see its log')
      if (result === null) throw new CliError('the node stopped without reporting how its leave ended')
      if (!result.ok) throw new CliError(`leave did not hand over: ${result.reason}`)
      process.stdout.write(
        result.successor
          ? `handed over to ${result.successor.slice(0, 8)}\n`
          : 'left (this node was not serving)\n',
      )
    })
}

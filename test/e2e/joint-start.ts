import { expect } from 'vitest'
import { claimsBetween, type StartFederation } from './leave-run.ts'

/**
 * `runs` joint starts of 5 nodes (priorities 50, 40, 30, 20, 10), as `sustain demo` starts them: the
 * first node to claim the service, and every claim until one serves, must be node-0's.
 */
export async function jointStarts(
  start: StartFederation,
  runs: number,
  stop: () => Promise<void>,
): Promise<string[]> {
  const firsts: string[] = []
  for (let i = 0; i < runs; i++) {
    const started_ms = Date.now()
    const fed = await start({ nodes: 5, priorities: [50, 40, 30, 20, 10] })
    const server = await fed.server(90_000)
    firsts.push(claimsBetween(fed, started_ms, Date.now()).join('+'))
    process.stderr.write(`joint start ${i + 1}/${runs}: ${server.name} serves; claims ${firsts.at(-1)}\n`)
    expect({ run: i, server: server.name }).toEqual({ run: i, server: 'node-0' })
    await stop()
  }
  process.stdout.write(`joint starts, claims until the first server: ${firsts.join(', ')}\n`)
  expect(firsts).toEqual(firsts.map(() => 'node-0'))
  return firsts
}

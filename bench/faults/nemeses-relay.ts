/**
 * Damaged links from a relay in the lab (issue 20: "delay 50–500 ms with jitter, duplication and
 * reordering"): this kernel has no netem, so bench/faults/relay.py carries every packet between nodes
 * through TUN devices it owns and holds, copies or reorders them. Its end is the heal (the devices and
 * their routes vanish with it), so the relay is bounded by its own --max-s as well as by the nemesis.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { Prng } from '../../test/sim/prng.ts'
import type { Nemesis, NemesisContext } from './nemeses.ts'

const RELAY = fileURLToPath(new URL('./relay.py', import.meta.url))
/** Debian's python3 when there is one: a pyenv shim first on PATH took seconds to start under load. */
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3'

export interface RelayParams {
  delay_ms: number
  jitter_ms: number
  /** Jitter never reorders a link (delay alone); otherwise packets may overtake each other. */
  in_order: boolean
  duplicate: number
  reorder: number
}

const relays = new Set<ChildProcess>()

/** Ends every relay still running (the lab's exit paths call it; each relay also ends itself). */
export function stopRelays(): void {
  for (const relay of relays) if (relay.exitCode === null && relay.signalCode === null) relay.kill('SIGKILL')
}

/** Starts the relay over every node of the lab; resolves once every route goes through it. */
async function startRelay(ctx: NemesisContext, p: RelayParams, seed: number, max_s: number) {
  const argv = [
    RELAY,
    '--nodes',
    ctx.nodes.map((n) => `${n.host.ns}=${n.host.address}`).join(','),
    '--seed',
    String(seed),
    '--delay-ms',
    String(p.delay_ms),
    '--jitter-ms',
    String(p.jitter_ms),
    '--duplicate',
    String(p.duplicate),
    '--reorder',
    String(p.reorder),
    '--max-s',
    String(max_s),
    ...(p.in_order ? ['--in-order'] : []),
  ]
  const child = spawn(PYTHON, argv, { stdio: ['ignore', 'pipe', 'pipe'] })
  relays.add(child)
  child.once('exit', () => relays.delete(child))
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString()
  })
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  const exited = once(child, 'exit')
  const ready = new Promise<void>((resolve, reject) => {
    // Generous: under a load of 40 on 2 cores, a Python start through a pyenv shim alone took seconds.
    const timer = setTimeout(
      () => reject(new Error(`the relay was not ready within 120 s: ${stderr.trim().slice(-500)}`)),
      120_000,
    )
    const check = () => {
      if (stdout.startsWith('ready\n')) {
        clearTimeout(timer)
        resolve()
      }
    }
    child.stdout!.on('data', check)
    void exited.then(() => {
      clearTimeout(timer)
      reject(new Error(`the relay exited before it was ready: ${stderr.trim()}`))
    })
  })
  try {
    await ready
  } catch (error) {
    child.kill('SIGKILL')
    throw error
  }
  /** Ends the relay (the heal) and resolves with its counts. */
  const stop = async (): Promise<Record<string, unknown>> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    const bounded = setTimeout(() => child.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(bounded)
    const last = stdout.trim().split('\n').at(-1) ?? ''
    try {
      return JSON.parse(last) as Record<string, unknown>
    } catch {
      return { error: `no counts from the relay: ${stderr.trim().slice(-300)}` }
    }
  }
  return { stop }
}

/**
 * A nemesis that damages every link between nodes for `hold_ms` with parameters drawn from the seed;
 * `touched(p)`: the nodes whose elections are not false failovers (the bar: none at 200 ms or less).
 */
function relayNemesis(
  name: string,
  draw: (rng: Prng) => RelayParams,
  touched: (p: RelayParams, ctx: NemesisContext) => number[],
): Nemesis {
  return {
    name,
    async run(ctx) {
      const p = draw(ctx.rng)
      const relay_seed = ctx.rng.int(0, 2 ** 31 - 1)
      // The fault begins with the relay's first route (it routes while it already relays), before 'ready'.
      const fault_t = Date.now()
      // Bounded by itself too: a lab that dies mid-hold leaves no relay (and so no damaged link).
      const relay = await startRelay(ctx, p, relay_seed, (2 * ctx.hold_ms) / 1000 + 150)
      ctx.note(
        `relay on every link between nodes: delay ${p.delay_ms} ms +- ${p.jitter_ms} ms` +
          `${p.in_order ? ' (in order)' : ''}, duplicate ${(p.duplicate * 100).toFixed(0)} %, ` +
          `reorder ${(p.reorder * 100).toFixed(0)} %`,
      )
      let counts: Record<string, unknown>
      try {
        await ctx.sleep(ctx.hold_ms)
      } finally {
        counts = await relay.stop()
      }
      const heal_t = Date.now()
      ctx.note(`healed: relay ended, nodes talk directly again; ${JSON.stringify(counts)}`)
      return {
        fault_t,
        heal_t,
        touched: touched(p, ctx),
        pure_partition: true,
        params: { ...p, relay_seed, relay: counts },
      }
    },
  }
}

const allNodes = (ctx: NemesisContext) => ctx.nodes.map((n) => n.index)

/** 50–500 ms each way with jitter up to a quarter of it, links kept in order: delay alone. */
export const delay = relayNemesis(
  'delay',
  (rng) => {
    const delay_ms = rng.int(50, 500)
    return {
      delay_ms,
      jitter_ms: rng.int(0, Math.floor(delay_ms / 4)),
      in_order: true,
      duplicate: 0,
      reorder: 0,
    }
  },
  (p, ctx) => (p.delay_ms + p.jitter_ms <= 200 ? [] : allNodes(ctx)),
)

/** 5–30 % of packets delivered twice (the copy up to the jitter later), on a short delay. */
export const duplicate = relayNemesis(
  'duplicate',
  (rng) => ({
    delay_ms: rng.int(5, 50),
    jitter_ms: rng.int(0, 5),
    in_order: false,
    duplicate: rng.int(5, 30) / 100,
    reorder: 0,
  }),
  () => [],
)

/** 10–40 % of packets sent at once, ahead of the rest held 20–100 ms (netem's reorder), plus jitter. */
export const reorder = relayNemesis(
  'reorder',
  (rng) => {
    const delay_ms = rng.int(20, 100)
    return {
      delay_ms,
      jitter_ms: rng.int(0, Math.floor(delay_ms / 2)),
      in_order: false,
      duplicate: 0,
      reorder: rng.int(10, 40) / 100,
    }
  },
  () => [],
)

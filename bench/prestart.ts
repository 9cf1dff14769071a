/**
 * Prestart benchmark: what a failover's service start costs with the command started ahead of need
 * (manifest `prestart: true`: the top candidate keeps it loaded and waiting) against a plain start, for
 * the example mail service. Both modes run the same service (examples/mail through its own run.mjs and
 * helper, from a service directory per mode whose manifests differ only in `prestart`), 3 real node
 * processes on a local testnet, snapshots every second; each round starts a fresh federation per mode
 * (modes in rotating order), waits until the server answers (and, with prestart, until the top candidate
 * holds its copy), SIGKILLs the server's process group and reads from the new server's log: the start
 * to the service's own "listening" line (the process start: what prestart removes), and the kill to that
 * line and to `service_answering` (the first probe that passed).
 * Usage: npm run bench:prestart [-- --rounds N]
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { parse, stringify } from 'yaml'
import { LocalFederation, type LogRecord } from '../src/demo/local-federation.ts'
import { keepRun } from './lib/results-file.ts'
import { benchCommand, type RunMeta, startRun } from './lib/run-meta.ts'
import { rotation, spread } from './lib/stats.ts'
import type { PrestartMode, PrestartRun } from './render/prestart.ts'
import { renderResults } from './render/results-md.ts'

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' } } })
const ROUNDS = Number(values.rounds)
if (!Number.isInteger(ROUNDS) || ROUNDS < 1)
  throw new Error(`--rounds: a positive integer, got ${values.rounds}`)
const MAIL = resolve(import.meta.dirname, '..', 'examples', 'mail')
const MODES = ['prestart', 'plain'] as const
type Mode = (typeof MODES)[number]
const say = (line: string) => process.stderr.write(`${line}\n`)

const after =
  (name: string, t: number, extra: (r: LogRecord) => boolean = () => true) =>
  (r: LogRecord) =>
    r.event === name && Number(r.time) >= t && extra(r)
const listening = (t: number) => (r: LogRecord) =>
  r.stream === 'stdout' && Number(r.time) >= t && /listening on/.test(String(r.msg))

/** A service directory running examples/mail as it is, with `prestart` set as asked. */
async function serviceDir(dir: string, prestart: boolean): Promise<string> {
  const service_dir = join(dir, `service-${prestart ? 'prestart' : 'plain'}`)
  await rm(service_dir, { recursive: true, force: true })
  await mkdir(service_dir)
  const manifest = parse(await readFile(join(MAIL, 'sustain-service.yaml'), 'utf8')) as Record<
    string,
    unknown
  >
  manifest['command'] = ['node', join(MAIL, 'run.mjs')]
  manifest['helper'] = join(MAIL, 'helper')
  manifest['prestart'] = prestart
  await writeFile(join(service_dir, 'sustain-service.yaml'), stringify(manifest))
  return service_dir
}

interface Sample {
  start_to_listening_ms: number
  kill_to_listening_ms: number
  kill_to_answering_ms: number
  prestarted: boolean
}

async function failover(dir: string, mode: Mode, round: number): Promise<Sample> {
  const service_dir = await serviceDir(dir, mode === 'prestart')
  const fed = new LocalFederation({
    dir: join(dir, `fed-${mode}-${round}`),
    nodes: 3,
    snapshot_interval_ms: 1000,
    service_dir,
  })
  const unhook = fed.stopOnSignals() // SIGINT/SIGTERM of the bench: the nodes go first
  try {
    await fed.start()
    const server = await fed.server(60_000)
    await server.waitFor((r) => r.event === 'service_answering', 60_000, 'answering')
    const others = fed.nodes.filter((n) => n !== server)
    if (mode === 'prestart')
      await LocalFederation.first(
        others,
        (r) => r.event === 'service_prestarted',
        30_000,
        'a prestarted copy',
      )
    const killed = Date.now()
    server.signal('SIGKILL')
    const { node } = await LocalFederation.first(
      others,
      after('service_answering', killed),
      60_000,
      'answering',
    )
    const started = await node.waitFor(after('service_started', killed), 10_000, 'started')
    const heard = await node.waitFor(listening(killed), 10_000, 'listening')
    const answering = node.records.find(after('service_answering', killed))!
    return {
      start_to_listening_ms: Number(heard.time) - Number(started.time),
      kill_to_listening_ms: Number(heard.time) - killed,
      kill_to_answering_ms: Number(answering.time) - killed,
      prestarted: started.prestarted === true,
    }
  } finally {
    await fed.stop()
    unhook()
  }
}

const dir = await mkdtemp(join(tmpdir(), 'sustain-bench-prestart-'))
try {
  const finish = startRun(benchCommand('bench:prestart'), ROUNDS)
  const samples: Record<Mode, Sample[]> = { prestart: [], plain: [] }
  for (let round = 0; round < ROUNDS; round++) {
    for (const mode of rotation(MODES, round)) {
      const sample = await failover(dir, mode, round)
      samples[mode].push(sample)
      say(`round ${round + 1}/${ROUNDS} ${mode}: ${JSON.stringify(sample)}`)
    }
  }
  const summarise = (xs: Sample[]): PrestartMode => ({
    runs: xs.length,
    prestarted_runs: xs.filter((s) => s.prestarted).length,
    start_to_listening_ms: spread(xs.map((s) => s.start_to_listening_ms)),
    kill_to_listening_ms: spread(xs.map((s) => s.kill_to_listening_ms)),
    kill_to_answering_ms: spread(xs.map((s) => s.kill_to_answering_ms)),
    samples: xs,
  })
  const run: PrestartRun & RunMeta = {
    prestart: summarise(samples.prestart),
    plain: summarise(samples.plain),
    ...finish(),
  }
  await keepRun('prestart.json', run)
  await renderResults()
  say(
    JSON.stringify({ prestart: run.prestart.start_to_listening_ms, plain: run.plain.start_to_listening_ms }),
  )
} finally {
  await rm(dir, { recursive: true, force: true })
}

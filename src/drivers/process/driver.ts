import { type ChildProcess, spawn } from 'node:child_process'
import { EventEmitter, once } from 'node:events'
import { mkdir } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import type { Writable } from 'node:stream'
import { ENV, START_LINE } from '../../../helpers/index.ts'
import type { Logger } from '../../../lib/log.ts'
import {
  directoryImageWriter,
  type ImageWriter,
  imageFromDirectory,
  swapDirectory,
} from '../../../snapshot/index.ts'
import type {
  Capture,
  CaptureOptions,
  DriverEvent,
  HelperOptions,
  HelperResult,
  ServiceDriver,
} from '../driver.ts'
import {
  detectFenceMode,
  type FenceMode,
  type FencePaths,
  fencedArgv,
  fencePaths,
  forgetServiceRecord,
  writeServiceRecord,
} from '../fence/index.ts'
import { judgeProbe, STARTING_PROBE_INTERVAL_MS } from '../probe-verdict.ts'
import { appendOnlyMatcher } from './append-only.ts'
import { logLines } from './line-log.ts'
import type { ServiceManifest } from './manifest.ts'
import { groupMembers, signalGroup, waitGroupGone, waitStopped } from './process-group.ts'
import { resolveExecutable } from './resolve-command.ts'
import { HELPER_UNKNOWN_VERB, HelperError, type HelperSpec, runHelper } from './run-helper.ts'
import { RACY_WINDOW_NS, StagingArea, type StagingBuild, wallClockNs } from './staging.ts'

export interface ProcessDriverOptions {
  /** Directory holding sustain-service.yaml; the service's working directory. */
  service_dir: string
  /** The service's state; the only thing snapshots capture. Created empty on first start. */
  state_dir: string
  /** Loopback port the service listens on (SUSTAIN_PORT). */
  port: number
  /** Variables naming the loopback ports of the service's other client ports (SUSTAIN_PORT_<NAME>). */
  port_env?: Record<string, string>
  log: Logger
  manifest: ServiceManifest
  /** Where capture generations live (same file system as state_dir, for hard links). */
  staging_dir?: string
  /**
   * Copy changed files once while the service runs, so the pause only re-copies what changed since
   * (pre-copy migration). Default true.
   */
  precopy?: boolean
  /**
   * End every process of the service when this node process dies, and hold the state directory's lock
   * (fence/fence-command.ts). Default true; false runs the command as it is (for tests of what a
   * service left running does to a node's next start).
   */
  die_with_node?: boolean
}

/** How long a SIGSTOPped group may take to show every thread stopped before the capture gives up. */
const STOP_SETTLE_TIMEOUT_MS = 2000
/**
 * An output capture that finds at most this much changed copies it in the freeze that checked (no
 * pre-copy): a second freeze cost more than copying this little (bench:zero-loss, issue 18).
 */
const SAME_FREEZE_COPY_BYTES = 1024 * 1024

export function createProcessDriver(options: ProcessDriverOptions): ProcessDriver {
  return new ProcessDriver(options)
}

interface Running {
  child: ChildProcess
  pgid: number
  started_ms: number
  exited: Promise<void>
  /** The process exited and its stdout/stderr are drained. */
  closed: Promise<void>
  /** Set by stop() and close(): the exit is expected, no `exited` event. */
  stopping: boolean
  answering: boolean
  answered_once: boolean
  probe_timer: NodeJS.Timeout | null
  fence: FenceMode
  /** A prestarted copy's start pipe until start() writes the start line (then null). */
  start_gate: Writable | null
  /** Prestarted and not yet released by start(): its exit is no service event. */
  gated: boolean
  /** The process exited. */
  gone: boolean
}

export class ProcessDriver extends EventEmitter implements ServiceDriver {
  readonly kind = 'process' as const
  readonly connect_proves_listening = true
  private readonly service_dir: string
  private readonly state_dir: string
  private readonly log: Logger
  private readonly manifest: ServiceManifest
  private readonly staging: StagingArea
  private readonly helpers = new Map<ChildProcess, (reason: string) => void>()
  private current: Running | null = null
  /** A prestarted copy waiting for its start line (manifest `prestart`), or null. */
  private held: Running | null = null
  /** The prestart under way (start() waits for it), or null. */
  private prestarting: Promise<void> | null = null
  /** A start() is spawning: no prestart may take the state's lock meanwhile. */
  private starting = false
  /** Bumped on every pause: a probe that overlapped one says nothing about the service. */
  private pause_epoch = 0
  private paused = false
  private closed = false
  private readonly fence: FencePaths

  constructor(private readonly options: ProcessDriverOptions) {
    super()
    this.service_dir = resolve(options.service_dir)
    this.state_dir = resolve(options.state_dir)
    this.log = options.log
    this.manifest = options.manifest
    const staging_dir =
      options.staging_dir ?? join(dirname(this.state_dir), `.${basename(this.state_dir)}.staging`)
    this.staging = new StagingArea(
      resolve(staging_dir),
      this.state_dir,
      appendOnlyMatcher(this.manifest.append_only),
    )
    this.fence = fencePaths(this.state_dir)
  }

  get running(): boolean {
    return this.current !== null
  }

  /**
   * The pid of the service's leader while it runs (also its process group id): the fence's first
   * process, whose exit is the service's; the service's own processes run in a PID namespace below it.
   */
  get pid(): number | null {
    return this.current?.pgid ?? null
  }

  private emitEvent(event: DriverEvent): void {
    this.emit('event', event)
  }

  private context(): NodeJS.ProcessEnv {
    return {
      ...process.env,
      ...this.manifest.env,
      ...this.options.port_env,
      SUSTAIN_STATE_DIR: this.state_dir,
      SUSTAIN_PORT: String(this.options.port),
      SUSTAIN_SERVICE_DIR: this.service_dir,
      SUSTAIN_SERVICE_NAME: this.manifest.name,
    }
  }

  private async fenceMode(): Promise<FenceMode> {
    return this.options.die_with_node === false ? 'none' : await detectFenceMode()
  }

  async start(): Promise<void> {
    if (this.closed) throw new Error('the driver is closed')
    if (this.current || this.starting) throw new Error(`service ${this.manifest.name} is already running`)
    this.starting = true
    let running: Running
    let held: Running | null
    try {
      // A prestart under way finishes first: its copy holds the state's lock, a second spawn would not.
      // One that failed leaves nothing held: this start spawns as usual.
      if (this.prestarting) await this.prestarting.catch(() => {})
      held = this.held
      this.held = null
      running = held && !held.gone ? held : await this.spawnService(false)
    } finally {
      this.starting = false
    }
    if (running.start_gate) {
      running.start_gate.end(START_LINE)
      running.start_gate = null
    }
    running.gated = false
    this.current = running
    this.log.info(
      {
        event: 'service_started',
        service_pid: running.pgid,
        command: this.manifest.command,
        fence: running.fence,
        prestarted: running === held,
      },
      'service started',
    )
    if (this.manifest.helper) this.scheduleProbe(running, STARTING_PROBE_INTERVAL_MS)
    else {
      // Without a probe the best we know is that it runs.
      running.answering = running.answered_once = true
      this.emitEvent({ kind: 'answering' })
    }
  }

  async prestart(): Promise<void> {
    if (!this.manifest.prestart || this.closed || this.current || this.starting) return
    if (this.held || this.prestarting) return
    this.prestarting = (async () => {
      const held = await this.spawnService(true)
      if (this.closed || this.current) return this.endHeld(held)
      this.held = held // a start() waiting for this prestart takes it
      this.log.info({ event: 'service_prestarted', service_pid: held.pgid }, 'service prestarted')
    })()
    try {
      await this.prestarting
    } finally {
      this.prestarting = null
    }
  }

  async dropPrestarted(): Promise<void> {
    const held = this.held
    if (!held) return
    this.held = null
    await this.endHeld(held)
  }

  /** Ends a held copy: its start pipe closes (it exits on its own), and the group is killed anyway. */
  private async endHeld(held: Running): Promise<void> {
    held.stopping = true
    held.start_gate?.destroy()
    held.start_gate = null
    signalGroup(held.pgid, 'SIGKILL')
    await held.exited
    await waitGroupGone(held.pgid, 2000)
  }

  /**
   * Spawns the service's command under the fence. `gated`: with a start pipe on fd 3 (ENV.start_fd) that
   * the service waits on before it touches its state (prestart).
   */
  private async spawnService(gated: boolean): Promise<Running> {
    const [name, ...args] = this.manifest.command
    const command = await resolveExecutable(
      name!,
      this.service_dir,
      `service command of ${this.manifest.name}:`,
    )
    await mkdir(this.state_dir, { recursive: true }) // the fence's lock lives beside it
    // A SIGKILLed node does not leave its service running, holding the port and taking requests.
    const mode = await this.fenceMode()
    const [file, argv] = fencedArgv(mode, this.fence.lock, command, args)
    const child = spawn(file, argv, {
      cwd: this.service_dir,
      env: gated ? { ...this.context(), [ENV.start_fd]: '3' } : this.context(),
      stdio: gated ? ['ignore', 'pipe', 'pipe', 'pipe'] : ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group: stop and pause reach everything it starts
    })
    await new Promise<void>((ok, fail) => {
      child.once('spawn', ok)
      child.once('error', (error: NodeJS.ErrnoException) =>
        fail(new Error(`service command ${command} cannot start: ${error.code ?? error.message}`)),
      )
    })
    const pgid = child.pid!
    logLines(child.stdout!, this.log, 'stdout')
    logLines(child.stderr!, this.log, 'stderr')
    const start_gate = gated ? (child.stdio[3] as Writable) : null
    start_gate?.on('error', () => {}) // the copy exited: its exit handler says so
    let exited!: () => void
    const running: Running = {
      child,
      pgid,
      fence: mode,
      started_ms: performance.now(),
      exited: new Promise<void>((ok) => {
        exited = ok
      }),
      closed: once(child, 'close').then(() => {}),
      stopping: false,
      answering: false,
      answered_once: false,
      probe_timer: null,
      start_gate,
      gated,
      gone: false,
    }
    child.on('exit', (code, signal) => {
      running.gone = true
      if (running.probe_timer) clearTimeout(running.probe_timer)
      if (this.held === running) this.held = null
      if (this.current === running) this.current = null
      // Whatever the leader left behind in its group goes with it (a restart must find the port free).
      signalGroup(pgid, 'SIGKILL')
      forgetServiceRecord(this.fence, pgid)
      if (running.gated) {
        // A held copy that ends on its own (not dropped) is worth a line: the next start spawns anew.
        if (!running.stopping)
          this.log.warn(
            { event: 'prestarted_exited', service_pid: pgid, code, signal },
            'prestarted service exited',
          )
        exited()
        return
      }
      this.log.info(
        { event: 'service_exited', service_pid: pgid, code, signal, expected: running.stopping },
        'service exited',
      )
      exited()
      if (!running.stopping) this.emitEvent({ kind: 'exited', code, signal })
    })
    // The next start of this node finds it by this record if the node dies and the fence fails.
    await writeServiceRecord(this.fence, pgid, this.log)
    return running
  }

  private scheduleProbe(running: Running, delay_ms: number): void {
    running.probe_timer = setTimeout(() => {
      running.probe_timer = null
      void this.probeOnce(running)
    }, delay_ms)
  }

  private async probeOnce(running: Running): Promise<void> {
    if (this.current !== running || running.stopping) return
    const epoch = this.pause_epoch
    let ok = false
    let reason = ''
    if (!this.paused) {
      try {
        const result = await this.helper('probe', [], { timeout_ms: this.manifest.probe_timeout_ms })
        ok = result.code === 0
        if (!ok)
          reason = `probe exited ${result.code}${result.stderr ? `: ${result.stderr.trim().slice(0, 200)}` : ''}`
      } catch (error) {
        reason = (error as Error).message
      }
    }
    if (this.current !== running || running.stopping) return
    const verdict = judgeProbe(
      running,
      { meaningful: !this.paused && epoch === this.pause_epoch, reason: ok ? null : reason },
      { what: 'service', log: this.log, probe_interval_ms: this.manifest.probe_interval_ms },
    )
    if (verdict.event) this.emitEvent(verdict.event)
    this.scheduleProbe(running, verdict.next_probe_ms)
  }

  async stop(reason: string): Promise<void> {
    const running = this.current
    if (!running) return
    running.stopping = true
    if (running.probe_timer) clearTimeout(running.probe_timer)
    this.log.info({ event: 'service_stopping', reason }, `stopping service (${reason})`)
    signalGroup(running.pgid, 'SIGTERM')
    signalGroup(running.pgid, 'SIGCONT') // a paused group would hold SIGTERM pending forever
    const kill = setTimeout(() => {
      this.log.warn(
        { event: 'service_kill', stop_timeout_ms: this.manifest.stop_timeout_ms },
        'service ignored SIGTERM; SIGKILL',
      )
      signalGroup(running.pgid, 'SIGKILL')
    }, this.manifest.stop_timeout_ms)
    try {
      await running.exited
    } finally {
      clearTimeout(kill)
    }
    // Its last output lines reach the log before stop resolves (bounded: an escaped daemon may hold the pipe).
    let timer: NodeJS.Timeout | undefined
    await Promise.race([running.closed, new Promise((ok) => (timer = setTimeout(ok, 1000)))])
    clearTimeout(timer)
    if (!(await waitGroupGone(running.pgid, 2000))) {
      throw new Error(`processes of service group ${running.pgid} survive SIGKILL`)
    }
  }

  async capture(options: CaptureOptions = {}): Promise<Capture> {
    if (this.closed) throw new Error('the driver is closed')
    if (options.same_as !== undefined) {
      const checked = await this.unchangedCapture(options.same_as, options.onFrozen)
      if (checked !== null) return checked
    }
    return this.fullCapture(options.onFrozen)
  }

  /** Pre-copy while the service runs (when on), then the paused pass, then the staged generation. */
  private async fullCapture(onFrozen?: () => void): Promise<Capture> {
    const build = await this.staging.begin()
    let pause_ms = 0
    try {
      const running = this.current
      if (running && this.options.precopy !== false) {
        const since_ns = wallClockNs() - RACY_WINDOW_NS
        await build.pass()
        build.markRacy(since_ns)
        await build.finish()
      }
      if (this.current) {
        const paused = await this.paused_pass(build, onFrozen)
        pause_ms = paused.pause_ms
      } else {
        onFrozen?.() // stopped: nothing writes or sends
        await build.pass() // no pause needed
      }
    } catch (error) {
      await this.staging.abort(build)
      throw error
    }
    return this.stagedCapture(build, pause_ms)
  }

  /** After the thaw: the rest of a build that its paused pass filled, committed as a capture. */
  private async stagedCapture(build: StagingBuild, pause_ms: number): Promise<Capture> {
    try {
      build.markRacy(wallClockNs() - RACY_WINDOW_NS)
      await build.finish() // reads only earlier generations: after the thaw
    } catch (error) {
      await this.staging.abort(build)
      throw error
    }
    const staged = await this.staging.commit(build)
    const parts = (await imageFromDirectory(staged.dir)).map((part) =>
      'path' in part ? staged.annotate(part) : part,
    )
    return {
      parts,
      pause_ms,
      release: staged.release,
      generation: staged.generation,
      ...(staged.same_as !== undefined ? { same_as: staged.same_as } : {}),
    }
  }

  /**
   * Output commit's captures (most answers change nothing durable). First, without a freeze: mark
   * (`onFrozen`), then stat the state directory. Every output marked left the service before the mark,
   * and the write that caused it finished before it was sent, so that write is visible to the stat that
   * follows: a directory found as generation `same_as` left it (by the keys a pass trusts; racy files
   * count as changed) holds the cause of every output marked, and a capture with no parts that names it
   * is returned, with no pause at all. A write after the mark can only make the check say "changed" (a
   * capture too many, never a release too early). The stopped service's settle under load (it must be
   * scheduled to stop) was most of such a capture's time, three times per SMTP transaction.
   * When a little changed (at most SAME_FREEZE_COPY_BYTES, e.g. one mail appended): one freeze that marks
   * again and copies it, no pre-copy pass. More: null, the caller takes a full capture with pre-copy (its
   * freeze marks again). Only without a quiesce verb (a service that flushes on quiesce may hold
   * acknowledged state in memory that only a full capture's quiesce writes out): null at once.
   */
  private async unchangedCapture(same_as: string, onFrozen?: () => void): Promise<Capture | null> {
    const running = this.current
    if (!running || (this.manifest.helper && !this.unknown_verbs.has('quiesce'))) return null
    onFrozen?.()
    const changed = this.staging.changedBytesSince(same_as)
    if (changed === 0)
      return {
        parts: [],
        pause_ms: 0,
        release: async () => {},
        generation: same_as,
        same_as,
        parts_omitted: true,
      }
    if (changed === null || changed > SAME_FREEZE_COPY_BYTES) return null
    const members = groupMembers(running.pgid)
    this.paused = true
    this.pause_epoch++
    const stopped_at = performance.now()
    let build: StagingBuild | null = null
    let settle_ms = 0
    let stats: Awaited<ReturnType<StagingBuild['pass']>> | null = null
    try {
      signalGroup(running.pgid, 'SIGSTOP')
      await waitStopped(members, STOP_SETTLE_TIMEOUT_MS)
      onFrozen?.()
      settle_ms = performance.now() - stopped_at
      build = await this.staging.begin()
      try {
        stats = await build.pass()
      } catch (error) {
        await this.staging.abort(build)
        throw error
      }
    } finally {
      signalGroup(running.pgid, 'SIGCONT')
      this.paused = false
      this.pause_epoch++
    }
    const pause_ms = performance.now() - stopped_at
    this.log.info(
      {
        event: 'service_paused',
        pause_ms: Number(pause_ms.toFixed(2)),
        settle_ms: Number(settle_ms.toFixed(2)),
        small_change: true,
        ...stats,
      },
      `service paused ${pause_ms.toFixed(1)} ms for a capture of a small change`,
    )
    return this.stagedCapture(build, pause_ms)
  }

  /** Quiesce, SIGSTOP, copy what changed, SIGCONT, resume: SIGCONT and resume happen whatever fails. */
  private async paused_pass(build: Awaited<ReturnType<StagingArea['begin']>>, onFrozen?: () => void) {
    const running = this.current!
    const quiesced = await this.optionalVerb('quiesce')
    try {
      const members = groupMembers(running.pgid)
      this.paused = true
      this.pause_epoch++
      const stopped_at = performance.now()
      let pause_ms = 0
      try {
        signalGroup(running.pgid, 'SIGSTOP')
        await waitStopped(members, STOP_SETTLE_TIMEOUT_MS)
        onFrozen?.()
        const settle_ms = performance.now() - stopped_at
        const stats = await build.pass()
        pause_ms = performance.now() - stopped_at
        this.log.info(
          {
            event: 'service_paused',
            pause_ms: Number(pause_ms.toFixed(2)),
            settle_ms: Number(settle_ms.toFixed(2)),
            ...stats,
          },
          `service paused ${pause_ms.toFixed(1)} ms for a capture`,
        )
        return { pause_ms, stats }
      } finally {
        signalGroup(running.pgid, 'SIGCONT')
        this.paused = false
        this.pause_epoch++
      }
    } finally {
      if (quiesced) await this.optionalVerb('resume')
    }
  }

  /**
   * Runs an optional helper verb; false when there is no helper or it does not know the verb. A verb the
   * helper said it does not know is not asked again while this driver lives: with output commit a
   * capture runs for nearly every answer, and starting a helper that only exits 64 cost ~100 ms of each
   * under load (the helper is resolved once per driver too).
   */
  private async optionalVerb(verb: 'quiesce' | 'resume'): Promise<boolean> {
    if (!this.manifest.helper || this.unknown_verbs.has(verb)) return false
    const result = await this.helper(verb, [], { timeout_ms: this.manifest.probe_timeout_ms })
    if (result.code === 0) return true
    if (result.code === HELPER_UNKNOWN_VERB) {
      this.unknown_verbs.add(verb)
      return false
    }
    throw new HelperError(
      `helper ${verb} failed (exit ${result.code}): ${result.stderr.trim().slice(0, 500)}`,
    )
  }

  stateWriter(): ImageWriter {
    if (this.current) throw new Error('the state directory can be replaced only while the service is stopped')
    const writer = directoryImageWriter(this.state_dir)
    return {
      openPart: (name) => writer.openPart(name),
      commit: async () => {
        if (this.current) throw new Error('the service started while its state was being restored')
        await writer.commit()
        this.staging.forget() // new inodes anyway; never trust keys of a replaced tree
      },
      abort: () => writer.abort(),
    }
  }

  async adoptState(prepared_dir: string): Promise<void> {
    if (this.current) throw new Error('the state directory can be replaced only while the service is stopped')
    await swapDirectory(prepared_dir, this.state_dir)
    this.staging.forget() // new inodes: never trust keys of a replaced tree
  }

  private helperSpec: Promise<HelperSpec> | undefined
  /** Optional verbs the helper answered "unknown verb" to. */
  private readonly unknown_verbs = new Set<string>()

  async helper(verb: string, args: string[], options?: HelperOptions): Promise<HelperResult> {
    const helper = this.manifest.helper
    if (!helper) throw new HelperError(`service ${this.manifest.name} has no helper (manifest field helper)`)
    this.helperSpec ??= resolveExecutable(helper, this.service_dir, `helper of ${this.manifest.name}:`).then(
      (path) => ({ path, cwd: this.service_dir, env: this.context() }),
    )
    const spec = await this.helperSpec.catch((error) => {
      this.helperSpec = undefined // fixed on disk later: look again next time
      throw error
    })
    return runHelper(spec, verb, args, options, this.helpers)
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.dropPrestarted()
    await this.stop('close')
    for (const cancel of this.helpers.values()) cancel('the driver closed')
    const deadline = performance.now() + 2000
    while (this.helpers.size > 0 && performance.now() < deadline) await new Promise((ok) => setTimeout(ok, 5))
    await this.staging.close()
    this.removeAllListeners()
  }
}

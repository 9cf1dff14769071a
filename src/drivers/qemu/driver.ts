import { type ChildProcess, spawn } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { constants } from 'node:fs'
import { access, mkdir, mkdtemp, readdir, readFile, rename, rm, stat } from 'node:fs/promises'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { Logger } from '../../../lib/log.ts'
import {
  directoryImageWriter,
  type ImagePart,
  type ImageWriter,
  swapDirectory,
} from '../../../snapshot/index.ts'
import { freePort } from '../../util/free-port.ts'
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
  type FencePaths,
  fencedArgv,
  fencePaths,
  forgetServiceRecord,
  writeServiceRecord,
} from '../fence/index.ts'
import { judgeProbe, STARTING_PROBE_INTERVAL_MS } from '../probe-verdict.ts'
import { logLines } from '../process/line-log.ts'
import { signalGroup } from '../process/process-group.ts'
import { HelperError } from '../process/run-helper.ts'
import { runSshHelper, type SshHelperTarget, sshFingerprint } from '../ssh-helper.ts'
import { type Accel, type AccelChoice, chooseAccel } from './accel.ts'
import { captureBackground, enableBackgroundSnapshot } from './background-capture.ts'
import { probeBanner } from './banner-probe.ts'
import { diskContentName, diskFileName, type GuestForward, MEMORY_STATE_FILE, qemuArgs } from './command.ts'
import { copySparse } from './copy-sparse.ts'
import { DiskTracker } from './disk-tracker.ts'
import type { QemuServiceManifest } from './manifest.ts'
import { awaitMemoryFile, memorySinkUri } from './memory-sink.ts'
import {
  encodeStream,
  hasPageImage,
  pageImageDataBytes,
  pageImageFiles,
  removePageImage,
  StreamFormatError,
  streamToPageImage,
} from './page-image.ts'
import { QmpClient as Qmp, type QmpClient, type QmpEvent } from './qmp.ts'
import { run } from './run-command.ts'
import { waitMigration } from './wait-migration.ts'

export interface QemuDriverOptions {
  /** Directory holding sustain-service.yaml; kernel, initrd and disk templates resolve against it. */
  service_dir: string
  /** The guest's state: its disks and, after a restore, the memory state to continue from. */
  state_dir: string
  /** Host port (127.0.0.1) forwarded to the guest's service port. */
  port: number
  /**
   * More host ports (127.0.0.1) forwarded into the guest, at boot and at every restore: the client ports
   * the front door reaches other than `ports.service` (runtime/create-driver.ts).
   */
  client_forwards?: readonly GuestForward[]
  /** Host port (127.0.0.1) forwarded to the guest's SSH port; default: a free port, chosen once. */
  ssh_port?: number
  log: Logger
  manifest: QemuServiceManifest
  /** Default: SUSTAIN_QEMU_ACCEL, else `auto` (KVM only when a probe boots under it). */
  accel?: AccelChoice
  qemu_binary?: string
  /**
   * `background`: memory by QEMU's background snapshot while the guest runs, disks by change; the pause
   * is the switch only (used as stop-copy when QEMU lacks the capability). `stop-copy` (default;
   * SUSTAIN_QEMU_CAPTURE overrides): the guest stays stopped while its memory and whole disks are copied.
   */
  capture_mode?: CaptureMode
  /**
   * How a capture stores guest memory: `image` (default) a page image (page-image.ts: one sparse file per
   * RAM block + the device state), `stream` the migration stream as QEMU wrote it (the earlier parts;
   * kept for the benchmark's comparison). A restore takes either. SUSTAIN_QEMU_MEMORY_FORMAT overrides
   * the default (tests compare both through `sustain join`).
   */
  memory_format?: MemoryFormat
}

export type CaptureMode = 'background' | 'stop-copy'
export type MemoryFormat = 'image' | 'stream'

const QMP_CONNECT_TIMEOUT_MS = 15_000
/** A restore reads the whole memory stream before the guest can continue. */
const INCOMING_TIMEOUT_MS = 120_000
/** QEMU's default migration bandwidth cap (128 MiB/s) would stretch the pause; the stream goes to a file. */
const MIGRATE_MAX_BANDWIDTH = 64 * 1024 * 1024 * 1024

export function createQemuDriver(options: QemuDriverOptions): QemuDriver {
  return new QemuDriver(options)
}

interface Running {
  child: ChildProcess
  qmp: QmpClient | null
  accel: Accel
  started_ms: number
  exited: Promise<void>
  /** start() resolved: before that a failure rejects start() instead of becoming an event. */
  started: boolean
  /** Set by stop() and close(): the exit is expected, no event. */
  stopping: boolean
  /** A capture paused the guest: its STOP is expected. */
  pausing: boolean
  /** A background capture is on: the migration's brief STOP (and RESUME) is expected. */
  snapshotting: boolean
  /** QEMU accepted the background-snapshot capability. */
  background: boolean
  /** A failure was reported (one event per failure, the first that arrives). */
  failed: boolean
  answering: boolean
  answered_once: boolean
  probe_timer: NodeJS.Timeout | null
}

export class QemuDriver extends EventEmitter implements ServiceDriver {
  readonly kind = 'qemu' as const
  readonly connect_proves_listening = false
  private readonly service_dir: string
  private readonly state_dir: string
  private readonly staging_root: string
  private readonly fence: FencePaths
  private readonly log: Logger
  private readonly manifest: QemuServiceManifest
  private readonly qemu: string
  private readonly banner: RegExp | null
  private current: Running | null = null
  private run_dir: string | null = null
  private ssh_port: number | undefined
  private ssh_target: Promise<SshHelperTarget> | undefined
  private capture_seq = 0
  private closed = false
  private readonly disks: DiskTracker
  private capture_mode: CaptureMode
  /** Switched by the benchmark to compare both on one guest. */
  memory_format: MemoryFormat
  /** A capture's parts not yet released: the disk mirrors it names must not change under the engine. */
  private unreleased = false

  constructor(private readonly options: QemuDriverOptions) {
    super()
    this.service_dir = resolve(options.service_dir)
    this.state_dir = resolve(options.state_dir)
    this.staging_root = join(dirname(this.state_dir), `.${basename(this.state_dir)}.qemu-staging`)
    this.fence = fencePaths(this.state_dir)
    this.log = options.log
    this.manifest = options.manifest
    this.qemu = options.qemu_binary ?? 'qemu-system-x86_64'
    this.banner = this.manifest.probe.banner ? new RegExp(this.manifest.probe.banner) : null
    this.ssh_port = options.ssh_port
    this.disks = new DiskTracker(this.manifest.disks, join(this.staging_root, 'mirror'), this.log)
    // stop-copy is still the default: with the page image a background snapshot's delta is as small as
    // stop-copy's, but its pause has not been measured below stop-copy's on this host (ARCHITECTURE, Not yet).
    const mode = options.capture_mode ?? process.env['SUSTAIN_QEMU_CAPTURE'] ?? 'stop-copy'
    if (mode !== 'background' && mode !== 'stop-copy') throw new Error(`unknown capture mode ${mode}`)
    this.capture_mode = mode
    const format = options.memory_format ?? process.env['SUSTAIN_QEMU_MEMORY_FORMAT'] ?? 'image'
    if (format !== 'image' && format !== 'stream') throw new Error(`unknown memory format ${format}`)
    this.memory_format = format
  }

  get running(): boolean {
    return this.current !== null
  }

  /** The pid of QEMU's fence leader while it runs (its exit is QEMU's; QEMU runs in a PID namespace below). */
  get pid(): number | null {
    return this.current?.child.pid ?? null
  }

  /** The accelerator of the running guest. */
  get accel(): Accel | null {
    return this.current?.accel ?? null
  }

  /** Host port forwarded to the guest's SSH port (chosen at the first start). */
  get sshPort(): number | undefined {
    return this.ssh_port
  }

  /** The guest's serial console log (for diagnostics), once started. */
  get consoleLog(): string | null {
    return this.run_dir ? join(this.run_dir, 'console.log') : null
  }

  private path(relative: string): string {
    return resolve(this.service_dir, relative)
  }

  /** Disks the guest does not have yet come from their templates (or are made empty). */
  private async prepareDisks(): Promise<void> {
    await mkdir(this.state_dir, { recursive: true })
    for (const disk of this.manifest.disks) {
      const target = join(this.state_dir, diskFileName(disk))
      const content = join(this.state_dir, diskContentName(disk))
      if (content !== target && (await exists(content))) {
        // A restored qcow2 disk arrives as its content (raw): it becomes a qcow2 file again.
        await run('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', content, `${target}.tmp`])
        await rename(`${target}.tmp`, target)
        await rm(content, { force: true })
        continue
      }
      if (await exists(target)) continue
      if (disk.image) await copySparse(this.path(disk.image), target)
      else await run('qemu-img', ['create', '-q', '-f', disk.format, target, `${disk.size_mib}M`])
    }
  }

  async start(): Promise<void> {
    if (this.closed) throw new Error('the driver is closed')
    if (this.current) throw new Error(`guest ${this.manifest.name} is already running`)
    await this.prepareDisks()
    const kernel = this.manifest.kernel ? this.path(this.manifest.kernel) : undefined
    const accel = await chooseAccel(
      this.options.accel ?? (process.env['SUSTAIN_QEMU_ACCEL'] as AccelChoice | undefined) ?? 'auto',
      this.qemu,
      kernel,
    )
    this.run_dir ??= await mkdtemp(join(tmpdir(), 'sustain-qemu-'))
    if (this.manifest.ports?.ssh !== undefined) this.ssh_port ??= await freePort()
    const memory_state = join(this.state_dir, MEMORY_STATE_FILE)
    const incoming = (await exists(memory_state)) ? memory_state : undefined
    // A page image (page-image.ts) is encoded back into a stream as QEMU reads it, by a Unix socket.
    const incoming_socket =
      !incoming && (await hasPageImage(this.state_dir)) ? join(this.run_dir, 'incoming.sock') : undefined
    const qmp_socket = join(this.run_dir, 'qmp.sock')
    await rm(qmp_socket, { force: true })
    if (incoming_socket) await rm(incoming_socket, { force: true })
    const args = qemuArgs({
      manifest: this.manifest,
      accel,
      ...(kernel ? { kernel } : {}),
      ...(this.manifest.initrd ? { initrd: this.path(this.manifest.initrd) } : {}),
      state_dir: this.state_dir,
      qmp_socket,
      console_log: join(this.run_dir, 'console.log'),
      service_port: this.options.port,
      ...(this.ssh_port !== undefined ? { ssh_port: this.ssh_port } : {}),
      ...(this.options.client_forwards ? { client_forwards: this.options.client_forwards } : {}),
      ...(incoming ? { incoming } : {}),
      ...(incoming_socket ? { incoming_socket } : {}),
    })
    // A SIGKILLed node does not leave its guest running, holding the ports and its disks.
    const mode = await detectFenceMode()
    const [command, argv] = fencedArgv(mode, this.fence.lock, this.qemu, args)
    // Its own process group: signals reach QEMU through the fence's leader (which passes none on).
    const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    await new Promise<void>((ok, fail) => {
      child.once('spawn', ok)
      child.once('error', (error: NodeJS.ErrnoException) =>
        fail(new Error(`${this.qemu} cannot start: ${error.code ?? error.message}`)),
      )
    })
    logLines(child.stdout!, this.log, 'stdout')
    logLines(child.stderr!, this.log, 'stderr')
    let exited!: () => void
    const running: Running = {
      child,
      qmp: null,
      accel,
      started_ms: performance.now(),
      exited: new Promise<void>((ok) => {
        exited = ok
      }),
      started: false,
      stopping: false,
      pausing: false,
      snapshotting: false,
      background: false,
      failed: false,
      answering: false,
      answered_once: false,
      probe_timer: null,
    }
    let gone = false
    child.on('exit', (code, signal) => {
      gone = true
      signalGroup(child.pid!, 'SIGKILL')
      forgetServiceRecord(this.fence, child.pid!)
      if (running.probe_timer) clearTimeout(running.probe_timer)
      running.qmp?.close()
      if (this.current === running) this.current = null
      this.log.info(
        { event: 'service_exited', qemu_pid: child.pid, code, signal, expected: running.stopping },
        'QEMU exited',
      )
      exited()
      if (running.started && !running.stopping && !running.failed) {
        running.failed = true
        this.emit('event', { kind: 'exited', code, signal } satisfies DriverEvent)
      }
    })
    this.current = running
    await writeServiceRecord(this.fence, child.pid!, this.log)
    this.disks.reset('QEMU started: its dirty bitmaps are gone', true)
    try {
      running.qmp = await Qmp.connect(qmp_socket, QMP_CONNECT_TIMEOUT_MS, () => gone)
      running.qmp.on('event', (event: QmpEvent) => this.onQmpEvent(running, event))
      await running.qmp.execute('migrate-set-parameters', { 'max-bandwidth': MIGRATE_MAX_BANDWIDTH })
      if (incoming_socket) await this.feedIncoming(incoming_socket, () => gone)
      if (incoming || incoming_socket) await this.continueIncoming(running)
      if (this.capture_mode === 'background')
        running.background = await enableBackgroundSnapshot(running.qmp, this.log)
    } catch (error) {
      running.stopping = true
      signalGroup(child.pid!, 'SIGKILL')
      await running.exited
      throw new Error(`guest ${this.manifest.name} did not start: ${(error as Error).message}`)
    }
    running.started = true
    if (gone) throw new Error(`guest ${this.manifest.name} exited during its start`)
    this.log.info(
      {
        event: 'service_started',
        qemu_pid: child.pid,
        accel,
        restored: incoming !== undefined || incoming_socket !== undefined,
      },
      `guest started under ${accel}${incoming || incoming_socket ? ' from its memory state' : ''}`,
    )
    if (this.banner || this.manifest.probe.helper) this.scheduleProbe(running, STARTING_PROBE_INTERVAL_MS)
    else {
      running.answering = running.answered_once = true
      this.emit('event', { kind: 'answering' } satisfies DriverEvent)
    }
  }

  /** Writes the stream encoded from the state directory's page image to QEMU's incoming socket. */
  private async feedIncoming(socket_path: string, gone: () => boolean): Promise<void> {
    const started = performance.now()
    const deadline = started + INCOMING_TIMEOUT_MS
    let socket: Socket | undefined
    while (!socket) {
      socket = await new Promise<Socket | undefined>((ok) => {
        const s = connect(socket_path)
        s.once('connect', () => ok(s))
        s.once('error', () => ok(undefined))
      })
      if (socket) break
      if (gone()) throw new Error('QEMU exited before it listened for the memory state')
      if (performance.now() > deadline) throw new Error(`QEMU did not listen on ${socket_path}`)
      await delay(10)
    }
    await pipeline(Readable.from(encodeStream(this.state_dir)), socket)
    this.log.info(
      { event: 'memory_image_sent', send_ms: Math.round(performance.now() - started) },
      'memory state encoded from its page image and sent to QEMU',
    )
  }

  /** Waits until QEMU has read the whole memory stream, then lets the guest continue where it was. */
  private async continueIncoming(running: Running): Promise<void> {
    const qmp = running.qmp!
    const deadline = performance.now() + INCOMING_TIMEOUT_MS
    for (;;) {
      const { status } = await qmp.execute<{ status: string }>('query-status')
      if (status !== 'inmigrate') break
      if (performance.now() > deadline) throw new Error(`memory state not read in ${INCOMING_TIMEOUT_MS} ms`)
      await delay(10)
    }
    await qmp.execute('cont')
    // From here on the disks move on: a later restart in place boots on them instead of going back.
    await rm(join(this.state_dir, MEMORY_STATE_FILE), { force: true })
    await removePageImage(this.state_dir)
    const restore_ms = Math.round(performance.now() - running.started_ms)
    this.log.info(
      { event: 'guest_resumed', restore_ms },
      `guest continues from its memory state (${restore_ms} ms)`,
    )
  }

  private onQmpEvent(running: Running, event: QmpEvent): void {
    // QEMU's own time of the event: how long it took to reach the driver shows in the log.
    const qmp_time_ms = event.timestamp
      ? event.timestamp.seconds * 1000 + Math.floor(event.timestamp.microseconds / 1000)
      : undefined
    this.log.info(
      { event: 'qmp_event', qmp_event: event.event, qmp_time_ms, data: event.data },
      `QMP ${event.event}`,
    )
    if (running.stopping || running.failed || this.current !== running) return
    const fail = (report: DriverEvent) => {
      running.failed = true
      if (running.probe_timer) clearTimeout(running.probe_timer)
      this.emit('event', report)
    }
    switch (event.event) {
      case 'GUEST_PANICKED':
        fail({ kind: 'unusable', reason: 'guest kernel panic' })
        return
      case 'BLOCK_IO_ERROR': {
        const data = event.data ?? {}
        fail({
          kind: 'unusable',
          reason: `disk I/O error on ${String(data['device'] || data['node-name'])} (${String(data['operation'])}: ${String(data['reason'] ?? '')})`,
        })
        return
      }
      case 'SHUTDOWN':
      case 'RESET':
        // QEMU is ending (-no-reboot): report now, the exit follows and is not reported again.
        fail({ kind: 'exited', code: null, signal: null })
        signalGroup(running.child.pid!, 'SIGKILL')
        return
      case 'STOP':
        if (!running.pausing && !running.snapshotting)
          fail({ kind: 'probe-failed', reason: 'the guest was stopped' })
        return
    }
  }

  private scheduleProbe(running: Running, delay_ms: number): void {
    running.probe_timer = setTimeout(() => {
      running.probe_timer = null
      void this.probeOnce(running)
    }, delay_ms)
  }

  private async probe(): Promise<void> {
    const timeout_ms = this.manifest.probe_timeout_ms
    if (this.banner) await probeBanner(this.options.port, this.banner, timeout_ms)
    if (this.manifest.probe.helper) {
      const result = await this.helper('probe', [], { timeout_ms })
      if (result.code !== 0)
        throw new Error(`probe exited ${result.code}: ${result.stderr.trim().slice(0, 200)}`)
    }
  }

  private async probeOnce(running: Running): Promise<void> {
    if (this.current !== running || running.stopping || running.failed) return
    let reason = ''
    const paused = running.pausing
    try {
      if (!paused) await this.probe()
    } catch (error) {
      reason = (error as Error).message
    }
    if (this.current !== running || running.stopping || running.failed) return
    const verdict = judgeProbe(
      running,
      { meaningful: !paused && !running.pausing, reason: reason || null },
      { what: 'guest service', log: this.log, probe_interval_ms: this.manifest.probe_interval_ms },
    )
    if (verdict.event) this.emit('event', verdict.event)
    this.scheduleProbe(running, verdict.next_probe_ms)
  }

  async stop(reason: string): Promise<void> {
    const running = this.current
    if (!running) return
    running.stopping = true
    if (running.probe_timer) clearTimeout(running.probe_timer)
    this.log.info({ event: 'service_stopping', reason }, `stopping guest (${reason})`)
    // The guest's state is its disks (and the snapshots): power it off at once, like a cut cable.
    const quit = running.qmp?.execute('quit', undefined, 1000).catch(() => {})
    const term = setTimeout(() => signalGroup(running.child.pid!, 'SIGTERM'), 1000)
    const kill = setTimeout(
      () => signalGroup(running.child.pid!, 'SIGKILL'),
      1000 + this.manifest.stop_timeout_ms,
    )
    try {
      await running.exited
    } finally {
      clearTimeout(term)
      clearTimeout(kill)
    }
    await quit
  }

  async capture(options: CaptureOptions = {}): Promise<Capture> {
    if (this.closed) throw new Error('the driver is closed')
    if (this.unreleased) throw new Error('the previous capture is not released yet')
    const seq = ++this.capture_seq
    const dir = join(this.staging_root, String(seq))
    await rm(dir, { recursive: true, force: true })
    await mkdir(dir, { recursive: true })
    this.unreleased = true
    const release = async () => {
      await rm(dir, { recursive: true, force: true })
      this.unreleased = false
    }
    try {
      const running = this.current
      if (!running) options.onFrozen?.() // a stopped guest sends nothing
      let pause_ms = 0
      const parts: ImagePart[] = []
      if (running?.background) {
        const generation = `${process.pid}-${seq}`
        const result = await this.captureRunning(running, dir, generation, options.onFrozen)
        pause_ms = result.pause_ms
        await this.splitMemory(dir)
        const memory = (await pageImageFiles(dir)).concat(
          (await exists(join(dir, MEMORY_STATE_FILE))) ? [MEMORY_STATE_FILE] : [],
        )
        parts.push(...memory.map((name) => ({ name, path: join(dir, name) })), ...result.disk_parts)
      } else {
        pause_ms = running
          ? await this.capturePaused(running, dir, options.onFrozen)
          : await this.captureStopped(dir)
        if (running) await this.splitMemory(dir)
        for (const name of (await readdir(dir)).sort()) parts.push({ name, path: join(dir, name) })
      }
      parts.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      return { parts, pause_ms, release }
    } catch (error) {
      await release()
      throw error
    }
  }

  /**
   * The captured stream becomes a page image (page-image.ts), after the guest runs again: its parts
   * line up with the previous snapshot's whatever order QEMU wrote the pages in. A stream it cannot
   * read stays as it is (a restore takes either).
   */
  private async splitMemory(dir: string): Promise<void> {
    if (this.memory_format === 'stream') return
    const started = performance.now()
    try {
      const result = await streamToPageImage(dir, MEMORY_STATE_FILE)
      this.log.info(
        {
          event: 'memory_split',
          split_ms: Math.round(performance.now() - started),
          pages: result.pages,
          zero_pages: result.zero_pages,
          /** Guest memory that is not zero: what the image's RAM files hold (the rest are holes). */
          data_bytes: pageImageDataBytes(result),
          device_bytes: result.device_bytes,
          stream_bytes: result.stream_bytes,
        },
        'memory stream stored as a page image',
      )
    } catch (error) {
      if (!(error instanceof StreamFormatError)) throw error
      this.log.warn(
        { event: 'memory_split_failed', error: error.message },
        'memory stream kept as it is: not a stream the page image reads',
      )
    }
  }

  /**
   * Switches how the next captures are taken (the benchmark compares both on one guest). QEMU's
   * background-snapshot capability follows: with it on, a migration restarts a guest stopped for it.
   */
  async setCaptureMode(mode: CaptureMode): Promise<void> {
    this.capture_mode = mode
    const running = this.current
    if (!running?.qmp) return
    if (mode === 'background') running.background = await enableBackgroundSnapshot(running.qmp, this.log)
    else if (running.background) {
      await running.qmp.execute('migrate-set-capabilities', {
        capabilities: [{ capability: 'background-snapshot', state: false }],
      })
      running.background = false
    }
  }

  /** Background snapshot of memory, disks by change (background-capture.ts). */
  private async captureRunning(
    running: Running,
    dir: string,
    generation: string,
    onFrozen?: () => void,
  ): Promise<{ pause_ms: number; disk_parts: ImagePart[] }> {
    const qmp = running.qmp
    if (!qmp || running.failed) throw new Error('the guest has failed; nothing consistent to capture')
    const { status } = await qmp.execute<{ status: string }>('query-status')
    if (status !== 'running') throw new Error(`the guest is ${status}, not running; no capture`)
    await mkdir(join(this.staging_root, 'mirror'), { recursive: true })
    const memory_path = join(dir, MEMORY_STATE_FILE)
    running.snapshotting = true
    try {
      const result = await captureBackground({
        qmp,
        disks: this.disks,
        has_disks: this.manifest.disks.length > 0,
        dir,
        memory_path,
        generation,
        log: this.log,
        onFrozen,
      })
      const memory_state_bytes = (await stat(memory_path)).size
      this.log.info(
        {
          event: 'service_paused',
          mode: 'background',
          pause_ms: Number(result.pause_ms.toFixed(2)),
          memory_ms: Math.round(result.memory_ms),
          memory_state_bytes,
        },
        `guest paused ${result.pause_ms.toFixed(1)} ms for a background capture`,
      )
      return result
    } catch (error) {
      // QEMU stopped answering during a background snapshot (see memory-sink.ts): the guest is hung.
      if (/no answer in/.test((error as Error).message) && this.current === running && !running.failed) {
        running.failed = true
        if (running.probe_timer) clearTimeout(running.probe_timer)
        this.emit('event', {
          kind: 'unusable',
          reason: `QEMU stopped answering during a capture: ${(error as Error).message}`,
        } satisfies DriverEvent)
        signalGroup(running.child.pid!, 'SIGKILL')
      }
      throw error
    } finally {
      running.snapshotting = false
    }
  }

  /** stop -> memory and device state to a file -> disks copied -> cont: one consistent instant. */
  private async capturePaused(running: Running, dir: string, onFrozen?: () => void): Promise<number> {
    const qmp = running.qmp
    if (!qmp || running.failed) throw new Error('the guest has failed; nothing consistent to capture')
    const { status } = await qmp.execute<{ status: string }>('query-status')
    if (status !== 'running') throw new Error(`the guest is ${status}, not running; no capture`)
    const memory_path = join(dir, MEMORY_STATE_FILE)
    running.pausing = true
    const stopped_at = performance.now()
    let migrate_ms = 0
    try {
      await qmp.execute('stop')
      onFrozen?.() // the vCPUs are stopped: the guest sends nothing more until `cont`
      await qmp.execute('migrate', { uri: memorySinkUri(memory_path) })
      await waitMigration(qmp)
      await awaitMemoryFile(memory_path)
      migrate_ms = performance.now() - stopped_at
      for (const disk of this.manifest.disks) {
        const name = diskFileName(disk)
        await copySparse(join(this.state_dir, name), join(dir, name))
      }
    } finally {
      // Resume whatever failed: a capture must never leave the service paused.
      await qmp.execute('cont').catch((error: Error) => {
        this.log.error({ event: 'resume_failed', error: error.message }, 'could not resume the guest')
      })
      running.pausing = false
    }
    const pause_ms = performance.now() - stopped_at
    const memory_state_bytes = (await stat(memory_path)).size
    this.log.info(
      {
        event: 'service_paused',
        pause_ms: Number(pause_ms.toFixed(2)),
        migrate_ms: Number(migrate_ms.toFixed(2)),
        memory_state_bytes,
      },
      `guest paused ${pause_ms.toFixed(1)} ms for a capture`,
    )
    return pause_ms
  }

  /** A stopped guest: its state directory as it is (disks, and a memory state not yet resumed). */
  private async captureStopped(dir: string): Promise<number> {
    const names = [
      MEMORY_STATE_FILE,
      ...(await pageImageFiles(this.state_dir)),
      ...this.manifest.disks.flatMap((d) => [...new Set([diskFileName(d), diskContentName(d)])]),
    ]
    for (const name of names) {
      const source = join(this.state_dir, name)
      if (await exists(source)) await copySparse(source, join(dir, name))
    }
    return 0
  }

  stateWriter(): ImageWriter {
    if (this.current) throw new Error('the guest state can be replaced only while the guest is stopped')
    const writer = directoryImageWriter(this.state_dir)
    return {
      openPart: (name) => writer.openPart(name),
      commit: async () => {
        if (this.current) throw new Error('the guest started while its state was being restored')
        await writer.commit()
      },
      abort: () => writer.abort(),
    }
  }

  /** A warm standby's decoded copy (memory.state on local disk): the start is one `-incoming` of it. */
  async adoptState(prepared_dir: string): Promise<void> {
    if (this.current) throw new Error('the guest state can be replaced only while the guest is stopped')
    await swapDirectory(prepared_dir, this.state_dir)
  }

  private async sshTarget(): Promise<SshHelperTarget> {
    const ssh = this.manifest.ssh
    if (!ssh || this.manifest.ports?.ssh === undefined)
      throw new HelperError(`guest ${this.manifest.name} has no SSH helper (manifest fields ssh, ports.ssh)`)
    const host_key = (await readFile(this.path(ssh.host_key), 'utf8')).trim().split(/\s+/)
    if (host_key.length < 2 || !host_key[1])
      throw new HelperError(`${ssh.host_key}: not an OpenSSH public key`)
    return {
      host: '127.0.0.1',
      port: this.ssh_port ?? 0,
      username: ssh.user,
      private_key: await readFile(this.path(ssh.private_key)),
      host_key_sha256: sshFingerprint(Buffer.from(host_key[1], 'base64')),
      helper_path: ssh.helper,
      env: {
        SUSTAIN_PORT: String(this.manifest.ports?.service ?? ''),
        SUSTAIN_SERVICE_NAME: this.manifest.name,
      },
    }
  }

  async helper(verb: string, args: string[], options?: HelperOptions): Promise<HelperResult> {
    if (!this.current) throw new HelperError(`guest ${this.manifest.name} is not running`)
    this.ssh_target ??= this.sshTarget()
    const target = await this.ssh_target.catch((error) => {
      this.ssh_target = undefined
      throw error
    })
    return runSshHelper({ ...target, port: this.ssh_port ?? target.port }, verb, args, options)
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.stop('close')
    await rm(this.staging_root, { recursive: true, force: true })
    if (this.run_dir) await rm(this.run_dir, { recursive: true, force: true })
    this.removeAllListeners()
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((ok) => setTimeout(ok, ms))
}

function exists(path: string, mode = constants.F_OK): Promise<boolean> {
  return access(path, mode).then(
    () => true,
    () => false,
  )
}

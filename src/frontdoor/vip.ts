import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'
import type { Logger } from '../../lib/log.ts'

/** `front_door.vip` of the node config: an IPv4 address (with `/prefix`, default /32) and the LAN interface. */
export interface VipConfig {
  address: string
  interface: string
}

/** Gratuitous ARPs sent when the address is taken (iputils arping sends one per second, the first at once). */
const GARP_COUNT = 3
/** An `ip addr` that takes longer than this is given up (it blocks the event loop: see serve()). */
const IP_TIMEOUT_MS = 2000
/** What `ip addr del` prints when the address is not there (nothing to remove). */
const ABSENT = /Cannot assign requested address/
/** What `ip addr add` prints when the address is there already. */
const PRESENT = /File exists/

/** The programs the VIP needs, by Debian package. */
const TOOLS = { ip: 'iproute2', arping: 'iputils-arping' }

function onPath(program: string): boolean {
  return (process.env['PATH'] ?? '').split(delimiter).some((dir) => {
    if (dir === '') return false
    try {
      accessSync(join(dir, program), constants.X_OK)
      return true
    } catch {
      return false
    }
  })
}

/** `ADDR/PREFIX` as `ip addr` takes it (a bare address is a /32). */
export function vipCidr(address: string): string {
  return address.includes('/') ? address : `${address}/32`
}

/**
 * The service's virtual IP on a LAN (root): held by the server only. serve(true) adds the address to the
 * interface and announces it by gratuitous ARP, so neighbours' caches move to this node's MAC at once;
 * serve(false) removes it. Both `ip` calls run synchronously (a few ms, on a role change only) so the
 * removal is done before the caller does anything else for the new role: two nodes must not both
 * answer for the address, and a node that stops serving must not take a client on it meanwhile.
 */
export class VirtualIp {
  private held = false
  private readonly cidr: string
  private readonly ip_address: string
  private readonly arpings = new Set<ChildProcess>()

  constructor(
    private readonly config: VipConfig,
    private readonly log: Logger,
  ) {
    this.cidr = vipCidr(config.address)
    this.ip_address = this.cidr.split('/')[0]!
    const missing = Object.entries(TOOLS).filter(([program]) => !onPath(program))
    if (missing.length > 0)
      throw new Error(
        `front_door.vip needs ${missing.map(([p, pkg]) => `\`${p}\` (Debian package ${pkg})`).join(' and ')} on PATH`,
      )
  }

  /** Whether this node holds the address now (as far as it knows: it added it and has not removed it). */
  get holding(): boolean {
    return this.held
  }

  /** Called on every role change: the server holds the address, no one else does. */
  serve(serving: boolean): void {
    if (serving && !this.held) this.take()
    else if (!serving && this.held) this.release('stopped serving')
  }

  /**
   * Removes the address whether or not this process added it: at start (a crash left it behind), at a
   * step down, at close. A failure is logged, never thrown: the caller's own work must go on.
   */
  release(reason: string): void {
    this.held = false
    for (const arping of this.arpings) arping.kill('SIGTERM') // no more announcements for us
    try {
      this.ip('del')
      this.log.info({ event: 'vip_released', address: this.cidr, reason }, 'virtual IP removed')
    } catch (error) {
      const text = String((error as { stderr?: unknown }).stderr ?? (error as Error).message)
      if (ABSENT.test(text)) return
      this.log.error(
        { event: 'vip_release_failed', address: this.cidr, err: text.trim() },
        'virtual IP not removed',
      )
    }
  }

  /** Ends announcements still running (close). */
  close(): void {
    for (const arping of this.arpings) arping.kill('SIGTERM')
  }

  private take(): void {
    try {
      this.ip('add')
    } catch (error) {
      const text = String((error as { stderr?: unknown }).stderr ?? (error as Error).message)
      if (!PRESENT.test(text)) {
        this.log.error(
          { event: 'vip_add_failed', address: this.cidr, err: text.trim() },
          'virtual IP not added',
        )
        return
      }
    }
    this.held = true
    this.log.info(
      { event: 'vip_taken', address: this.cidr, interface: this.config.interface },
      'virtual IP added',
    )
    // -U: unsolicited ARP (sender = target = the address), which neighbours use to update their cache.
    const arping = spawn(
      'arping',
      ['-U', '-c', String(GARP_COUNT), '-I', this.config.interface, this.ip_address],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    )
    this.arpings.add(arping)
    let stderr = ''
    arping.stderr!.on('data', (chunk: Buffer) => {
      if (stderr.length < 1000) stderr += chunk.toString()
    })
    arping.on('error', (error) =>
      this.log.error({ event: 'garp_failed', err: error.message }, 'gratuitous ARP failed'),
    )
    arping.on('exit', (code, signal) => {
      this.arpings.delete(arping)
      // arping -U exits 1 as no reply comes to an unsolicited ARP; only its complaints are errors.
      if (signal === null && code !== 0 && stderr.trim() !== '')
        this.log.error({ event: 'garp_failed', code, err: stderr.trim() }, 'gratuitous ARP failed')
      else
        this.log.debug(
          { event: 'garp_sent', address: this.ip_address, count: GARP_COUNT },
          'gratuitous ARP sent',
        )
    })
  }

  private ip(verb: 'add' | 'del'): void {
    execFileSync('ip', ['addr', verb, this.cidr, 'dev', this.config.interface], {
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: IP_TIMEOUT_MS,
    })
  }
}

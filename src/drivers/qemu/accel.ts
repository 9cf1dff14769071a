import { spawn } from 'node:child_process'
import { constants } from 'node:fs'
import { access } from 'node:fs/promises'

export type Accel = 'kvm' | 'tcg'
export type AccelChoice = Accel | 'auto'

/** A KVM guest prints its kernel banner well within this; a nested guest that hangs never does. */
export const KVM_PROBE_TIMEOUT_MS = 3000

const probes = new Map<string, Promise<Accel>>()

/**
 * KVM when a short probe proves a guest boots under it here, else TCG. /dev/kvm existing is not enough:
 * on some machines a nested guest hangs before its kernel runs. The probe boots `kernel` with an early
 * serial console and waits for "Linux version"; the result is kept for the life of this process.
 */
export function chooseAccel(choice: AccelChoice, qemu: string, kernel: string | undefined): Promise<Accel> {
  if (choice !== 'auto') return Promise.resolve(choice)
  if (!kernel) return kvmUsable(qemu, undefined)
  let probe = probes.get(`${qemu}\0${kernel}`)
  if (!probe) {
    probe = kvmUsable(qemu, kernel)
    probes.set(`${qemu}\0${kernel}`, probe)
  }
  return probe
}

async function kvmUsable(qemu: string, kernel: string | undefined): Promise<Accel> {
  const device = await access('/dev/kvm', constants.R_OK | constants.W_OK).then(
    () => true,
    () => false,
  )
  // Without a kernel to boot, a device that opens is the best evidence there is.
  if (!device || !kernel) return device ? 'kvm' : 'tcg'
  const child = spawn(
    qemu,
    [
      ...['-accel', 'kvm', '-m', '64', '-nodefaults', '-display', 'none', '-no-reboot'],
      ...['-serial', 'stdio', '-kernel', kernel, '-append', 'console=ttyS0 earlyprintk=ttyS0 panic=-1'],
    ],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  )
  return new Promise<Accel>((resolve) => {
    let seen = ''
    const done = (accel: Accel) => {
      clearTimeout(timer)
      child.kill('SIGKILL')
      resolve(accel)
    }
    const timer = setTimeout(() => done('tcg'), KVM_PROBE_TIMEOUT_MS)
    child.stdout!.setEncoding('utf8')
    child.stdout!.on('data', (text: string) => {
      seen = (seen + text).slice(-4096)
      if (seen.includes('Linux version')) done('kvm')
    })
    child.on('error', () => done('tcg'))
    child.on('exit', () => done(seen.includes('Linux version') ? 'kvm' : 'tcg'))
  })
}

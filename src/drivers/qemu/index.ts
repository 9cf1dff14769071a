/** The QEMU driver: a service is a guest VM whose memory and disks are its state (examples/qemu-guest). */
export { type Accel, type AccelChoice, chooseAccel } from './accel.ts'
export { clientForwards, diskFileName, type GuestForward, MEMORY_STATE_FILE } from './command.ts'
export { createQemuDriver, QemuDriver, type QemuDriverOptions } from './driver.ts'
export {
  loadQemuManifest,
  manifestDriverKind,
  parseQemuManifest,
  type QemuClientPort,
  type QemuServiceManifest,
} from './manifest.ts'
export { QmpClient, QmpError, type QmpEvent } from './qmp.ts'

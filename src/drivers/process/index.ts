/** The process driver: a service is a command plus a state directory (see README of examples/mail). */
export { createProcessDriver, ProcessDriver, type ProcessDriverOptions } from './driver.ts'
export { loadServiceManifest, MANIFEST_FILE, parseServiceManifest, type ServiceManifest } from './manifest.ts'
export { HELPER_UNKNOWN_VERB, HelperError } from './run-helper.ts'

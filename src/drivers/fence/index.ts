/** Fencing: a service never outlives its node, and a node never starts over a service still running. */
export { detectFenceMode, type FenceMode, fencedArgv, STATE_IN_USE_EXIT } from './fence-command.ts'
export { FenceError, reclaimLeftovers } from './reclaim.ts'
export { type FencePaths, fencePaths, forgetServiceRecord, writeServiceRecord } from './service-record.ts'

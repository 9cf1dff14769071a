import {
  clockSkew,
  diskFull,
  flapping,
  loss,
  type Nemesis,
  partitionHalves,
  partitionOneWay,
  partitionServer,
  processFault,
  restartEmpty,
  restartWithData,
} from './nemeses.ts'
import { PROCESS_NEMESES } from './nemeses-process.ts'
import { delay, duplicate, reorder } from './nemeses-relay.ts'
import { corruptBlock } from './nemeses-storage.ts'
import { bridge, majorityRing } from './nemeses-topology.ts'

/** Every nemesis of the lab, by name (`--only`). */
export const NEMESES: Nemesis[] = [
  partitionServer,
  partitionHalves,
  partitionOneWay,
  majorityRing,
  bridge,
  processFault('kill-server', 'SIGKILL'),
  processFault('stop-server', 'SIGSTOP'),
  ...PROCESS_NEMESES,
  flapping,
  loss,
  delay,
  duplicate,
  reorder,
  clockSkew,
  restartWithData,
  restartEmpty,
  diskFull,
  corruptBlock,
]

/** The quick run's set (CI): the partitions, the process faults and the full disk. */
export const QUICK = [
  'partition-server',
  'partition-halves',
  'partition-oneway',
  'kill-server',
  'stop-server',
  'disk-full',
]

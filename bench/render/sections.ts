import { cliSection } from './cli.ts'
import { failoverSection, leaveSection } from './failover.ts'
import { faultsSection } from './faults.ts'
import { fenceSection } from './fence.ts'
import { frontdoorSection } from './frontdoor.ts'
import { mergeSection } from './merge.ts'
import { moveSection } from './move.ts'
import { overlaySection } from './overlay.ts'
import { pauseSection } from './pause.ts'
import { prestartSection } from './prestart.ts'
import { qemuSection } from './qemu.ts'
import { qemuZeroLossSection } from './qemu-zero-loss.ts'
import type { Section } from './section.ts'
import { simSection } from './sim.ts'
import { snapshotSection } from './snapshot.ts'
import { typesSection } from './types.ts'
import { zeroLossSection } from './zero-loss.ts'

/** Every section of bench/RESULTS.md, in order. A suite without a results file is left out. */
export const SECTIONS: readonly Section[] = [
  snapshotSection,
  overlaySection,
  simSection,
  failoverSection,
  leaveSection,
  prestartSection,
  pauseSection,
  qemuSection,
  mergeSection,
  fenceSection,
  frontdoorSection,
  zeroLossSection,
  qemuZeroLossSection,
  faultsSection,
  moveSection,
  cliSection,
  typesSection,
]

import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach } from 'vitest'
import { LocalFederation, type LocalFederationOptions } from '../../src/demo/local-federation.ts'

/**
 * For a test file: returns a function that starts a local federation in a fresh temp directory. Every
 * federation it started is stopped and its directory removed after each test (kept with
 * SUSTAIN_KEEP_TEST_DIRS=1, for reading the node logs).
 */
export function localFederations(): ((
  options: Omit<LocalFederationOptions, 'dir'>,
) => Promise<LocalFederation>) & { stopAll: () => Promise<void> } {
  const started: { federation: LocalFederation; dir: string }[] = []
  /** Stops every federation started so far (also run after each test). */
  const stopAll = async () => {
    for (const { federation, dir } of started.splice(0)) {
      await federation.stop()
      if (!process.env.SUSTAIN_KEEP_TEST_DIRS) await rm(dir, { recursive: true, force: true })
    }
  }
  afterEach(stopAll)
  const start = async (options: Omit<LocalFederationOptions, 'dir'>) => {
    const dir = await mkdtemp(join(tmpdir(), 'sustain-e2e-'))
    await chmod(dir, 0o711) // a service running as its own users (Postfix) must reach its state directory
    const federation = new LocalFederation({ dir, ...options })
    started.push({ federation, dir })
    await federation.start()
    return federation
  }
  return Object.assign(start, { stopAll })
}

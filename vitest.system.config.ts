import { defineConfig } from 'vitest/config'

// The system suite (`npm run test:system`): files named *.system.test.ts need Debian packages (real SSH,
// tmux, Python's mbox reader, a C compiler; test/system/requirements.ts), *.slow.test.ts also take long
// (real Postfix, real QEMU, the demo in a terminal). CI runs it after the default suite; each file starts
// its own processes, so they run one file at a time.
export default defineConfig({
  test: {
    include: ['test/**/*.slow.test.{ts,tsx}', 'test/**/*.system.test.{ts,tsx}'],
    exclude: ['**/node_modules/**'],
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 300_000,
  },
})

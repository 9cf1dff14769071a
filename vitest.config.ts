import { defineConfig } from 'vitest/config'

// The default suite (`npm test`) needs nothing but Node and npm, and stays under ~10 minutes on 2 cores.
// Suites that need Debian packages (*.system.test.ts) or also take long (*.slow.test.ts: real QEMU, real
// Postfix) run under `npm run test:system` (vitest.system.config.ts).
export default defineConfig({
  test: {
    include: ['test/**/*.test.{ts,tsx}'],
    exclude: ['**/node_modules/**', 'test/**/*.slow.test.{ts,tsx}', 'test/**/*.system.test.{ts,tsx}'],
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
})

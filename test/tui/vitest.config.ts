import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

// Every UI test: the .tsx component tests (until the root config includes *.test.tsx) and the slow
// `sustain demo` terminal test. `bash test/loopback-only.sh npx vitest run --config test/tui/vitest.config.ts`
export default defineConfig({
  test: {
    root: fileURLToPath(new URL('../..', import.meta.url)),
    include: ['test/tui/**/*.test.{ts,tsx}'],
    exclude: ['**/node_modules/**'],
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
})

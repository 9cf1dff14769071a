import { defineConfig } from 'vitest/config'

// Slow suites (`npm run test:slow`): real Postfix, real QEMU, the demo in a terminal. CI runs them after
// the default suite; each file starts its own processes, so they run one file at a time.
export default defineConfig({
  test: {
    include: ['test/**/*.slow.test.{ts,tsx}'],
    exclude: ['**/node_modules/**'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 300_000,
  },
})

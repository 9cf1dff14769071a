import { defineConfig } from 'vitest/config'

// The default suite (`npm test`) stays under ~10 minutes on 2 cores. Slow suites (real QEMU, real
// Postfix) live in files named *.slow.test.ts and run through their own scripts (see package.json).
export default defineConfig({
  test: {
    include: ['test/**/*.test.{ts,tsx}'],
    exclude: ['**/node_modules/**', 'test/**/*.slow.test.{ts,tsx}'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
})

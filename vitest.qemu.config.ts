import { defineConfig } from 'vitest/config'

// Real QEMU guests (`npm run test:qemu`): one VM at a time, generous timeouts (TCG on 2 shared cores).
export default defineConfig({
  test: {
    include: ['test/qemu/**/*.slow.test.ts'],
    exclude: ['**/node_modules/**'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 180_000,
  },
})

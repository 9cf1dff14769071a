import { defineConfig } from 'vitest/config'

// The slow suite of real Postfix (needs root and the Debian postfix package):
//   bash test/loopback-only.sh npx vitest run --config test/postfix/vitest.config.ts
export default defineConfig({
  test: {
    root: new URL('../..', import.meta.url).pathname,
    include: ['test/postfix/**/*.slow.test.ts'],
    pool: 'forks',
    testTimeout: 180_000,
    hookTimeout: 60_000,
  },
})

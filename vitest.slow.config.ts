// The former slow suite is part of the system suite (vitest.system.config.ts); this name still works.
export { default } from './vitest.system.config.ts'

#!/usr/bin/env -S node --initial-old-space-size=128
// Runs the TypeScript CLI through tsx so `npx sustain` works right after `npm ci`, with no build step.
// The flag is HEAP_FLAGS of src/util/heap-flags.ts (V8 reads it only at start; NODE_OPTIONS refuses it).
import { register } from 'tsx/esm/api'

register()
await import('../src/cli/main.ts')

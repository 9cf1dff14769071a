// Worker threads do not inherit the tsx loader under every runner (vitest, plain node), so register it here.
import { register } from 'tsx/esm/api'

register()
await import('./control-worker.ts')

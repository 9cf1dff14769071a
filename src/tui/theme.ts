import type { Role } from '../core/types.ts'
import type { Tone } from './model.ts'
import type { SuspicionLevel } from './view.ts'

/** https://no-color.org: any non-empty NO_COLOR turns colours off (bold and inverse stay). */
export function colorEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return !(typeof env.NO_COLOR === 'string' && env.NO_COLOR !== '')
}

const ROLE_COLORS: Record<Role, string> = {
  server: 'green',
  candidate: 'cyan',
  electing: 'yellow',
  restoring: 'magenta',
  merging: 'blue',
  leaving: 'gray',
}

const TONE_COLORS: Record<Tone, string | undefined> = {
  fault: 'red',
  warn: 'yellow',
  good: 'green',
  info: undefined,
}

const SUSPICION_COLORS: Record<SuspicionLevel, string> = {
  0: 'green',
  1: 'yellow',
  2: 'yellow',
  3: 'red',
  4: 'red',
}

/** The colours the screen uses; every function returns undefined when colours are off. */
export interface Theme {
  role(role: Role): string | undefined
  tone(tone: Tone): string | undefined
  suspicion(level: SuspicionLevel): string | undefined
  /** Plain semantic colours: ok (green), bad (red), dim (gray). */
  ok: string | undefined
  bad: string | undefined
  dim: string | undefined
  color: boolean
}

export function makeTheme(color: boolean): Theme {
  const on = <T extends string | undefined>(value: T) => (color ? value : undefined)
  return {
    role: (role) => on(ROLE_COLORS[role]),
    tone: (tone) => on(TONE_COLORS[tone]),
    suspicion: (level) => on(SUSPICION_COLORS[level]),
    ok: on('green'),
    bad: on('red'),
    dim: on('gray'),
    color,
  }
}

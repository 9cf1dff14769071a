import { z } from 'zod'

/**
 * The manifest's `append_only` globs: relative paths inside the state directory, `*` and `?` within one
 * name, `**` across directories. Nothing else is special (no braces or classes), so a name is literal.
 */
export const appendOnlyGlob = z
  .string()
  .min(1)
  .max(256)
  .refine(
    (glob) =>
      !glob.startsWith('/') && !glob.split('/').some((part) => part === '' || part === '.' || part === '..'),
    'a relative path inside the state directory (no leading /, no . or .. or empty parts)',
  )

function globRegex(glob: string): string {
  let out = ''
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!
    if (c === '*' && glob[i + 1] === '*') {
      // `**/` matches zero or more directories; a trailing `**` anything below.
      if (glob[i + 2] === '/') {
        out += '(?:[^/]+/)*'
        i += 2
      } else {
        out += '.*'
        i += 1
      }
    } else if (c === '*') out += '[^/]*'
    else if (c === '?') out += '[^/]'
    else out += c.replace(/[\\^$.|+()[\]{}]/g, '\\$&')
  }
  return out
}

/** A predicate on '/'-separated relative names: true when any glob matches the whole name. */
export function appendOnlyMatcher(globs: readonly string[]): (name: string) => boolean {
  if (globs.length === 0) return () => false
  const regex = new RegExp(`^(?:${globs.map(globRegex).join('|')})$`)
  return (name) => regex.test(name)
}

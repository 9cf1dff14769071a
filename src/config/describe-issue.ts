import type { z } from 'zod'

// One wording for every schema error a person sees (config, service manifests).

function valueAt(input: unknown, path: PropertyKey[]): unknown {
  let cur = input
  for (const key of path) {
    if (cur === null || typeof cur !== 'object') return undefined
    cur = (cur as Record<PropertyKey, unknown>)[key]
  }
  return cur
}

/** One zod issue as `field a.b: got VALUE, expected WHAT`. */
export function describeSchemaIssue(input: unknown, issue: z.core.$ZodIssue): string {
  const field = issue.path.length > 0 ? issue.path.join('.') : '(top level)'
  const value = valueAt(input, issue.path)
  const got = value === undefined ? 'nothing' : JSON.stringify(value)
  if (issue.code === 'unrecognized_keys') return `field ${field}: unknown key(s) ${issue.keys.join(', ')}`
  const expected = issue.message.replace(/^[A-Z][a-z ]+: /, '').replace(/^expected /, '')
  return `field ${field}: got ${got}, expected ${expected}`
}

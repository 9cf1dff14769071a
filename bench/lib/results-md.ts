import { readFile } from 'node:fs/promises'
import { writeFileAtomic } from '../../lib/atomic-write.ts'

/** A markdown table; cells are rendered with String(). */
export function markdownTable(header: readonly string[], rows: readonly (readonly unknown[])[]): string {
  const line = (cells: readonly unknown[]) => `| ${cells.map((cell) => String(cell)).join(' | ')} |`
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n')
}

/**
 * Replace the section starting at `heading` (a `## ` line) up to the next `## ` heading in a shared
 * results file, or append it; other sections stay untouched.
 */
export async function replaceSection(path: string, heading: string, body: string): Promise<void> {
  if (!heading.startsWith('## ')) throw new Error('heading must be a level-2 markdown heading')
  const current = await readFile(path, 'utf8').catch(() => '# Benchmark results\n')
  const lines = current.split('\n')
  const start = lines.findIndex((line) => line.trim() === heading)
  const section = [heading, '', body.trimEnd(), '']
  if (start === -1) {
    const text = `${current.trimEnd()}\n\n${section.join('\n')}`
    await writeFileAtomic(path, text)
    return
  }
  let end = lines.findIndex((line, i) => i > start && line.startsWith('## '))
  if (end === -1) end = lines.length
  const next = [...lines.slice(0, start), ...section, ...lines.slice(end)]
  await writeFileAtomic(path, `${next.join('\n').trimEnd()}\n`)
}

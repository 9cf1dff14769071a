import { join } from 'node:path'
import { writeFileAtomic } from '../../../lib/atomic-write.ts'
import { nodePaths } from '../../config/data-dir.ts'
import { loadConfig } from '../../config/load.ts'
import { CliError } from '../../util/cli-error.ts'
import { systemdUnit, unitName } from '../systemd-unit.ts'

export async function unitFor(data: string): Promise<{ name: string; text: string }> {
  const config = await loadConfig(nodePaths(data).config)
  return { name: unitName(config), text: systemdUnit(data, config) }
}

export async function installUnit(data: string, unit_dir: string): Promise<void> {
  const { name, text } = await unitFor(data)
  const path = join(unit_dir, name)
  try {
    await writeFileAtomic(path, text, { mode: 0o644 })
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'EACCES' || code === 'EPERM' || code === 'ENOENT')
      throw new CliError(
        `cannot write ${path} (${code}): run as root, or print it with \`sustain service print\``,
      )
    throw error
  }
  process.stdout.write(`wrote ${path}\nstart it: systemctl daemon-reload && systemctl enable --now ${name}\n`)
}

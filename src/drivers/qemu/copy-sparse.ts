import { run } from './run-command.ts'

/**
 * Copies a disk image keeping its holes (and sharing blocks where the file system can reflink), so a
 * mostly empty disk costs what it holds, not its size, inside the capture pause.
 */
export function copySparse(source: string, target: string): Promise<void> {
  return run('cp', ['--sparse=always', '--reflink=auto', '--', source, target])
}

import { constants } from 'node:fs'
import { access, stat } from 'node:fs/promises'
import { delimiter, isAbsolute, join, resolve } from 'node:path'
import { ConfigError } from '../../config/load.ts'

async function isExecutableFile(path: string): Promise<'ok' | 'missing' | 'not-executable' | 'not-a-file'> {
  try {
    if (!(await stat(path)).isFile()) return 'not-a-file'
  } catch {
    return 'missing'
  }
  try {
    await access(path, constants.X_OK)
    return 'ok'
  } catch {
    return 'not-executable'
  }
}

/**
 * The absolute path of an executable named in a service manifest: a name with a slash resolves against
 * the service directory, a bare name is looked up in PATH. Anything else is one clear ConfigError,
 * which the runtime shows to the person who wrote the manifest.
 */
export async function resolveExecutable(
  name: string,
  service_dir: string,
  what: string,
  path_env = process.env['PATH'] ?? '',
): Promise<string> {
  if (name.includes('/')) {
    const path = isAbsolute(name) ? name : resolve(service_dir, name)
    const found = await isExecutableFile(path)
    if (found === 'ok') return path
    const why = { missing: 'no such file', 'not-executable': 'not executable', 'not-a-file': 'not a file' }[
      found
    ]
    throw new ConfigError(`${what} ${name} (${path}): ${why}`)
  }
  for (const dir of path_env.split(delimiter)) {
    if (dir === '') continue
    const path = join(dir, name)
    if ((await isExecutableFile(path)) === 'ok') return path
  }
  throw new ConfigError(`${what} ${name}: not found in PATH`)
}

import { readFile } from 'node:fs/promises'
import { parse as parseYaml } from 'yaml'
import { ConfigError } from './config-error.ts'
import { describeSchemaIssue } from './describe-issue.ts'
import { config_schema, type SustainConfig } from './schema.ts'

export { ConfigError }

/** Validates a parsed config object; throws a ConfigError listing every problem. */
export function parseConfig(input: unknown, source = 'config'): SustainConfig {
  const result = config_schema.safeParse(input)
  if (result.success) return result.data
  const lines = result.error.issues.map((issue) => `  ${describeSchemaIssue(input, issue)}`)
  throw new ConfigError(`${source} is invalid:\n${lines.join('\n')}`)
}

/** Reads a YAML or JSON config file (JSON is YAML). */
export async function loadConfig(path: string): Promise<SustainConfig> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    throw new ConfigError(`cannot read config ${path}: ${code === 'ENOENT' ? 'no such file' : String(error)}`)
  }
  let parsed: unknown
  try {
    parsed = parseYaml(text)
  } catch (error) {
    throw new ConfigError(`${path} is not valid YAML or JSON: ${(error as Error).message.split('\n')[0]}`)
  }
  return parseConfig(parsed, path)
}

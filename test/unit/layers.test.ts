import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const pkg = JSON.parse(
  await import('node:fs').then((fs) => fs.readFileSync(join(ROOT, 'package.json'), 'utf8')),
)
/** The layer check exactly as `npm run lint` runs it (package.json's lint:layers), from `cwd`. */
async function checkLayers(cwd: string): Promise<{ code: number; output: string }> {
  const [command, ...args] = (pkg.scripts['lint:layers'] as string).split(' ')
  expect(command).toBe('depcruise')
  const config = args.indexOf('--config')
  args[config + 1] = join(ROOT, args[config + 1]!)
  try {
    const { stdout, stderr } = await promisify(execFile)(join(ROOT, 'node_modules/.bin/depcruise'), args, {
      cwd,
    })
    return { code: 0, output: stdout + stderr }
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string }
    return { code: e.code, output: e.stdout + e.stderr }
  }
}

/** A tree shaped like the repository's, one deliberate violation per rule (and allowed imports beside). */
const FIXTURE: Record<string, string> = {
  'tsconfig.json': JSON.stringify({
    compilerOptions: {
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      allowImportingTsExtensions: true,
      noEmit: true,
    },
  }),
  'src/core/node.ts':
    "import { clock } from '../runtime/clock.ts'\nimport { rank } from './ranking.ts'\nexport const n = [clock, rank]\n",
  'src/core/ranking.ts': 'export const rank = 1\n',
  'src/core/io.ts': "import { readFileSync } from 'node:fs'\nexport const io = readFileSync\n",
  'src/runtime/clock.ts':
    "import { Federation } from '../../overlay/index.ts'\nexport const clock = Federation\n",
  'src/runtime/reach.ts': "import { inner } from '../../overlay/inner.ts'\nexport const r = inner\n",
  'src/tui/screen.ts': "import { format } from '../cli/format.ts'\nexport const s = format\n",
  'src/cli/format.ts': 'export const format = 1\n',
  'overlay/index.ts': "export { inner as Federation } from './inner.ts'\n",
  'overlay/inner.ts':
    "import { log } from '../src/util/log.ts'\nimport { write } from '../lib/write.ts'\nexport const inner = [log, write]\n",
  'src/util/log.ts': 'export const log = 1\n',
  'lib/write.ts': "import { format } from '../src/cli/format.ts'\nexport const write = format\n",
  'snapshot/index.ts': 'export const s = 1\n',
  'helpers/index.ts': 'export const h = 1\n',
}

describe('layer rules (npm run lint: dependency-cruiser with .dependency-cruiser.cjs)', () => {
  const dirs: string[] = []
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true })
  })

  it('fails on a deliberate violation of each rule, naming the rule and the import', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sustain-layers-'))
    dirs.push(dir)
    for (const [path, text] of Object.entries(FIXTURE)) {
      await mkdir(join(dir, dirname(path)), { recursive: true })
      await writeFile(join(dir, path), text)
    }
    const { code, output } = await checkLayers(dir)
    expect(code).not.toBe(0)
    expect(output).toContain('core-is-pure: src/core/node.ts → src/runtime/clock.ts')
    expect(output).toContain('core-is-pure: src/core/io.ts → fs')
    expect(output).toContain('libraries-stand-alone: overlay/inner.ts → src/util/log.ts')
    expect(output).toContain('library-through-its-entry: src/runtime/reach.ts → overlay/inner.ts')
    expect(output).toContain('ui-not-through-cli: src/tui/screen.ts → src/cli/format.ts')
    expect(output).toContain('shared-below-everything: lib/write.ts → src/cli/format.ts')
    // Allowed: core within core, src through a library's index, a library on lib/.
    expect(output).not.toContain('src/core/node.ts → src/core/ranking.ts')
    expect(output).not.toContain('src/runtime/clock.ts → overlay/index.ts')
    expect(output).not.toContain('overlay/inner.ts → lib/write.ts')
    expect(output).toMatch(/6 dependency violations/)
  })

  it('the repository itself keeps every rule', async () => {
    const { code, output } = await checkLayers(ROOT)
    expect(output).toContain('no dependency violations found')
    expect(code).toBe(0)
  })
})

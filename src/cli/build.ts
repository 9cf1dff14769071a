/**
 * Compiles the CLI into dist/ (esbuild): `npm ci` runs it through `prepare`, `npm run build` by hand, and
 * the test suites before they start (test/global-setup.ts). bin/sustain.js runs dist/cli.js while it is
 * newer than every source it was built from (dist/build.json), else the sources through tsx.
 *
 * One ESM bundle of our own code with code splitting, packages left to node_modules: a command loads
 * only what it imports (`sustain --version` no hyperswarm, `status` only the control socket client).
 * Source files keep finding what lies beside them (package.json, examples, the native library, tsx
 * entries of child processes): each `import.meta.url` in a source becomes that source's own URL,
 * relative to the bundle. Worker threads get compiled entries of their own (lib/worker-entry.ts).
 */
import { mkdir, readdir, readFile, rm } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as esbuild from 'esbuild'
import { writeFileAtomic } from '../../lib/atomic-write.ts'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
export const DIST = join(ROOT, 'dist')

/** Entry points: the CLI and the scripts of its worker threads (names as worker-entry.ts asks for them). */
const ENTRIES = {
  cli: 'src/cli/main.ts',
  'control-worker': 'overlay/control-worker.ts',
  'codec-worker': 'snapshot/codec-worker.ts',
}

export interface BuildRecord {
  /** When the build read its sources: a source changed after this makes dist/ stale. */
  started_ms: number
  /** Every source bundled, relative to the repository root. */
  inputs: string[]
  /** Files written, relative to dist/. */
  outputs: string[]
}

const sourceUrl: esbuild.Plugin = {
  name: 'source-url',
  setup(build) {
    build.onLoad({ filter: /\.tsx?$/ }, async (args) => {
      const text = await readFile(args.path, 'utf8')
      const url = `new URL(${JSON.stringify(relative(DIST, args.path))}, import.meta.url).href`
      return {
        contents: text.replaceAll('import.meta.url', url),
        loader: args.path.endsWith('x') ? 'tsx' : 'ts',
      }
    })
  },
}

async function previousOutputs(): Promise<string[]> {
  try {
    return (JSON.parse(await readFile(join(DIST, 'build.json'), 'utf8')) as BuildRecord).outputs
  } catch {
    return []
  }
}

/** Builds dist/; every file written atomically, so a CLI starting meanwhile reads whole files. */
export async function buildCli(): Promise<BuildRecord> {
  const started_ms = Date.now()
  const result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: ENTRIES,
    outdir: DIST,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    jsx: 'automatic',
    // The bundle's own URL, which sourceUrl leaves alone (it rewrites only the spelled-out form).
    define: { SUSTAIN_DIST_URL: 'import.meta.url' },
    plugins: [sourceUrl],
    metafile: true,
    write: false,
    logLevel: 'warning',
  })
  await mkdir(DIST, { recursive: true })
  const outputs: string[] = []
  for (const file of result.outputFiles) {
    await writeFileAtomic(file.path, Buffer.from(file.contents))
    outputs.push(relative(DIST, file.path))
  }
  const inputs = Object.keys(result.metafile.inputs).filter((path) => !path.includes('node_modules/'))
  // Outputs of the build before stay: a node started from it may still start a worker that imports them.
  const keep = new Set([...outputs, ...(await previousOutputs()), 'build.json'])
  for (const name of await readdir(DIST)) {
    if (!keep.has(name) && !name.startsWith('.')) await rm(join(DIST, name), { force: true }) // .tmp: a build's
  }
  const record: BuildRecord = { started_ms, inputs, outputs }
  await writeFileAtomic(join(DIST, 'build.json'), `${JSON.stringify(record, null, 1)}\n`)
  return record
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const record = await buildCli()
  const ms = Date.now() - record.started_ms
  console.log(`sustain: built ${relative(ROOT, DIST)}/ (${record.outputs.length} files, ${ms} ms)`)
}

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Command } from 'commander'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { registerImageCommands } from '../../src/cli/commands/image.ts'
import { CliError } from '../../src/util/cli-error.ts'
import { changePages, seededBytes } from './helpers.ts'

let dir: string

async function sustain(...args: string[]): Promise<string> {
  const program = new Command('sustain').exitOverride()
  registerImageCommands(program)
  let out = ''
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += chunk.toString()
    return true
  })
  try {
    await program.parseAsync(['node', 'sustain', 'image', ...args])
  } finally {
    spy.mockRestore()
  }
  return out
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sustain-cli-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('sustain image', () => {
  it('diff, verify and apply round-trip; a wrong base and a missing file are clear CLI errors', async () => {
    const base = seededBytes(1, 3 * 1024 * 1024 + 5)
    const next = changePages(base, 2, 30)
    await writeFile(join(dir, 'base.img'), base)
    await writeFile(join(dir, 'new.img'), next)
    await writeFile(join(dir, 'other.img'), seededBytes(3, base.length))
    const p = (name: string) => join(dir, name)
    expect(await sustain('diff', p('base.img'), p('new.img'), p('d.delta'), '--threads', '1')).toMatch(
      /d\.delta: \d+ bytes/,
    )
    expect(await sustain('verify', p('d.delta'))).toMatch(/ok/)
    await sustain('apply', p('base.img'), p('d.delta'), p('out.img'))
    expect((await readFile(p('out.img'))).equals(next)).toBe(true)

    const wrong = sustain('apply', p('other.img'), p('d.delta'), p('bad.img'))
    await expect(wrong).rejects.toBeInstanceOf(CliError)
    await expect(wrong).rejects.toThrow(/wrong-base/)
    await expect(sustain('apply', p('nope.img'), p('d.delta'), p('bad.img'))).rejects.toThrow(
      /base .*nope\.img: no such file/,
    )
    await expect(sustain('verify', p('base.img'))).rejects.toThrow(/not a Sustain delta file/)
  })
})

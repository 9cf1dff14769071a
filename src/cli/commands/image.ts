import type { Command } from 'commander'

export function registerImageCommands(program: Command): void {
  const image = program
    .command('image')
    .description('Encode, apply and verify image deltas (debugging and operations)')

  image
    .command('diff')
    .description('Write a delta file OUT that rebuilds NEW from BASE (files or directories)')
    .argument('<base>', 'base image (file or directory)')
    .argument('<new>', 'new image (file or directory)')
    .argument('<out>', 'delta file to write')
    .option('--threads <n>', 'worker threads (default: one per core)')
    .action(async (base: string, next: string, out: string, opts: { threads?: string }) => {
      const { imageDiff } = await import('./image-run.ts')
      await imageDiff(base, next, out, opts)
    })

  image
    .command('apply')
    .description('Rebuild an image into OUT from BASE and a delta file, verifying every chunk')
    .argument('<base>', 'the base the delta was made against')
    .argument('<delta>', 'delta file written by `image diff`')
    .argument('<out>', 'image to write (replaced atomically)')
    .option('--threads <n>', 'worker threads (default: one per core)')
    .action(async (base: string, delta: string, out: string, opts: { threads?: string }) => {
      const { imageApply } = await import('./image-run.ts')
      await imageApply(base, delta, out, opts)
    })

  image
    .command('verify')
    .description('Check a delta file, or every snapshot of a store directory, chunk by chunk')
    .argument('<file_or_store>', 'delta file or snapshot store directory')
    .option('--deep', 'store: also rebuild each snapshot (decode every delta) without writing it')
    .action(async (target: string, opts: { deep?: boolean }) => {
      const { imageVerify } = await import('./image-run.ts')
      await imageVerify(target, opts)
    })
}

import { createServer } from 'node:net'
import { join } from 'node:path'
import { PassThrough, Readable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { ArchiveError, ArchiveWriter, readArchive } from '../../helpers/archive.ts'
import { infoEnv, mergeEnv } from '../../helpers/protocol.ts'
import { defineHelper, HelperFailure, type InfoContext, type MergeContext } from '../../helpers/sdk.ts'
import { chunked, collect, tempDir } from './fixtures.ts'

async function records(data: Buffer, chunk = 3) {
  const out = []
  for await (const record of readArchive(chunked(data, chunk))) out.push(record)
  return out
}

describe('archive format', () => {
  it('round-trips records of any bytes, whatever the chunking of the stream', async () => {
    const bodies = [
      Buffer.alloc(0),
      Buffer.from('line\n'),
      Buffer.from([0, 10, 255, 10, 10]),
      Buffer.alloc(100_000, 7),
    ]
    const data = await collect(async (out) => {
      const writer = new ArchiveWriter(out)
      await writer.begin()
      for (const [i, body] of bodies.entries())
        await writer.add({ path: `d/f${i}`, mtime_ms: i, mode: 0o600 }, body)
      expect(await writer.end()).toBe(4)
    })
    for (const chunk of [1, 3, 4096, 1 << 20]) {
      const got = await records(data, chunk)
      expect(got.map((r) => r.body)).toEqual(bodies)
      expect(got.map((r) => [r.header.path, r.header.mtime_ms, r.header['mode']])).toEqual(
        bodies.map((_, i) => [`d/f${i}`, i, 0o600]),
      )
    }
  })

  it('rejects cut archives, wrong counts, unsafe paths, trailing data and foreign streams', async () => {
    const good = await collect(async (out) => {
      const writer = new ArchiveWriter(out)
      await writer.begin()
      await writer.add({ path: 'a', mtime_ms: 1 }, Buffer.from('abc'))
      await writer.end()
    })
    for (let cut = 0; cut < good.length; cut++) {
      await expect(records(good.subarray(0, cut))).rejects.toThrow(ArchiveError)
    }
    const text = good.toString()
    const bad = [
      text.replace('"records":1', '"records":2'),
      text.replace('"path":"a"', '"path":"../a"'),
      text.replace('"path":"a"', '"path":"/etc/passwd"'),
      text.replace('"size_bytes":3', '"size_bytes":-1'),
      `${text}more`,
      'HTTP/1.1 200 OK\n',
    ]
    for (const data of bad) await expect(records(Buffer.from(data))).rejects.toThrow(ArchiveError)
    await expect(
      new ArchiveWriter(new PassThrough()).add({ path: 'a/../b', mtime_ms: 0 }, Buffer.alloc(0)),
    ).rejects.toThrow(/unsafe/)
  })
})

function io(stdin = '') {
  const stdout = new PassThrough()
  const stderr = new PassThrough()
  const out: Buffer[] = []
  const err: Buffer[] = []
  stdout.on('data', (c: Buffer) => out.push(c))
  stderr.on('data', (c: Buffer) => err.push(c))
  return {
    io: { stdin: Readable.from([Buffer.from(stdin)]), stdout, stderr },
    stdout: () => Buffer.concat(out).toString(),
    stderr: () => Buffer.concat(err).toString(),
  }
}

describe('defineHelper', () => {
  const env = { SUSTAIN_STATE_DIR: '/state', SUSTAIN_PORT: '2525', SUSTAIN_SERVICE_DIR: '/svc' }

  it('answers 64 for verbs it does not define and for unknown verbs', async () => {
    const helper = defineHelper({ probe: () => true })
    for (const argv of [['archive', '--since', '1'], ['frobnicate'], []]) {
      const t = io()
      expect(await helper.run(argv, env, t.io)).toBe(64)
      expect(t.stderr()).toMatch(/unknown verb/)
    }
    expect(await helper.run(['probe'], env, io().io)).toBe(0)
  })

  it('maps results and errors to exit codes, the message to stderr', async () => {
    const helper = defineHelper({
      probe: () => false,
      quiesce: () => {
        throw new Error('disk on fire')
      },
      resume: () => {
        throw new HelperFailure('custom', 5)
      },
    })
    const t = io()
    expect(await helper.run(['probe'], env, t.io)).toBe(1)
    expect(await helper.run(['quiesce'], env, t.io)).toBe(1)
    expect(await helper.run(['resume'], env, t.io)).toBe(5)
    expect(t.stderr()).toContain('quiesce: disk on fire')
    expect(t.stderr()).toContain('resume: custom')
    expect(() => new HelperFailure('x', 64)).toThrow(RangeError)
    expect(await helper.run(['probe'], {}, io().io)).toBe(2) // SUSTAIN_STATE_DIR missing
  })

  it('parses --since and the merge environment; streams stdin to the handler', async () => {
    let seen: MergeContext | undefined
    let input = ''
    const helper = defineHelper({
      async merge(context) {
        seen = context
        for await (const chunk of context.stdin) input += chunk
        context.stdout.write('merged\n')
      },
    })
    const merge_env = {
      ...env,
      ...mergeEnv({ fork_id: 'w:3:7', fork_time_ms: 1234, peer: 'ab'.repeat(32), peer_name: 'n2' }),
    }
    const t = io('archive bytes')
    expect(await helper.run(['merge', '--since', '1234'], merge_env, t.io)).toBe(0)
    expect(seen).toMatchObject({
      verb: 'merge',
      since_ms: 1234,
      fork_id: 'w:3:7',
      peer: 'ab'.repeat(32),
      peer_name: 'n2',
      state_dir: '/state',
      service_dir: '/svc',
      port: 2525,
    })
    expect(input).toBe('archive bytes')
    expect(t.stdout()).toBe('merged\n')
    for (const argv of [
      ['merge'],
      ['merge', '--since'],
      ['merge', '--since', '-5'],
      ['merge', '--since', '1.5'],
    ]) {
      expect(await helper.run(argv, merge_env, io().io)).toBe(2)
    }
    expect(() => mergeEnv({ fork_id: null, fork_time_ms: 1.5, peer: 'x' })).toThrow(RangeError)
  })

  it('gives info its context and lets a helper ask the node for a snapshot on the control socket', async () => {
    const dir = await tempDir()
    const socket_path = join(dir, 'control.sock')
    const requests: string[] = []
    const server = createServer((socket) => {
      socket.on('data', (data) => {
        requests.push(data.toString())
        socket.end(`${JSON.stringify({ ok: true, id: 'snap-1' })}\n`)
      })
    })
    await new Promise<void>((ok) => server.listen(socket_path, ok))
    let seen: InfoContext | undefined
    let answer: unknown
    const helper = defineHelper({
      async info(context) {
        seen = context
        answer = await context.requestSnapshot()
      },
    })
    const info_env = {
      ...env,
      ...infoEnv({ newest_snapshot_ms: 1000, all_online_ms: null, split: true, control_socket: socket_path }),
    }
    try {
      expect(await helper.run(['info'], info_env, io().io)).toBe(0)
    } finally {
      server.close()
    }
    expect(seen).toMatchObject({ newest_snapshot_ms: 1000, all_online_ms: null, split: true })
    expect(requests).toEqual(['{"cmd":"snapshot"}\n'])
    expect(answer).toEqual({ ok: true, id: 'snap-1' })
  })
})

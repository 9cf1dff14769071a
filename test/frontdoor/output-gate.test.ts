import { once } from 'node:events'
import net from 'node:net'
import { PassThrough } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { OutputCommit } from '../../src/frontdoor/output-commit.ts'
import { OutputGate } from '../../src/frontdoor/output-gate.ts'

function collect(gate: OutputGate): { text: () => string; ended: () => boolean } {
  const parts: Buffer[] = []
  let ended = false
  gate.on('data', (b: Buffer) => parts.push(b))
  gate.on('end', () => {
    ended = true
  })
  return { text: () => Buffer.concat(parts).toString(), ended: () => ended }
}

/** Lets queued stream work (write -> transform -> data) run. */
const settle = () => new Promise((resolve) => setImmediate(resolve))

describe('OutputGate without output commit', () => {
  it('passes bytes at once', async () => {
    const gate = new OutputGate()
    const out = collect(gate)
    gate.write('220 hello\r\n')
    await settle()
    expect(out.text()).toBe('220 hello\r\n')
  })
})

describe('OutputGate with output commit', () => {
  it('holds bytes until the snapshot whose freeze followed them is released', async () => {
    let asked = 0
    const commit = new OutputCommit(() => asked++)
    const gate = new OutputGate(commit)
    const out = collect(gate)
    gate.write('250 one\r\n')
    await settle()
    expect(out.text()).toBe('')
    expect(asked).toBe(1)
    gate.write('250 two\r\n') // same wait: no second ask before a freeze
    await settle()
    expect(asked).toBe(1)
    commit.frozen('s1') // covers one and two
    gate.write('250 three\r\n') // read after the freeze: s1 may not hold its cause
    await settle()
    expect(asked).toBe(2)
    commit.release('unknown') // not a capture of ours: nothing moves
    await settle()
    expect(out.text()).toBe('')
    commit.release('s1')
    await settle()
    expect(out.text()).toBe('250 one\r\n250 two\r\n')
    commit.frozen('s2')
    commit.release('s2')
    await settle()
    expect(out.text()).toBe('250 one\r\n250 two\r\n250 three\r\n')
    expect(commit.waiting).toBe(0)
  })

  it('a later confirmation releases what earlier captures covered; an older one then does nothing', async () => {
    const commit = new OutputCommit(() => {})
    const gate = new OutputGate(commit)
    const out = collect(gate)
    gate.write('a')
    await settle()
    commit.frozen('s1')
    gate.write('b')
    await settle()
    commit.frozen('s2')
    gate.write('c')
    await settle()
    expect(commit.release('s2')?.chunks).toBe(2)
    await settle()
    expect(out.text()).toBe('ab')
    expect(commit.release('s1')).toBeNull()
    await settle()
    expect(out.text()).toBe('ab')
  })

  it('the end of the stream waits behind held bytes', async () => {
    const commit = new OutputCommit(() => {})
    const gate = new OutputGate(commit)
    const out = collect(gate)
    gate.end('221 bye\r\n')
    await settle()
    expect(out.ended()).toBe(false)
    commit.frozen('s1')
    commit.release('s1')
    await once(gate, 'end')
    expect(out.text()).toBe('221 bye\r\n')
  })

  it('stops reading from the service while too much is held (its socket pauses)', async () => {
    const commit = new OutputCommit(() => {})
    const gate = new OutputGate(commit)
    const source = new PassThrough()
    source.pipe(gate)
    const out = collect(gate)
    const chunk = Buffer.alloc(64 * 1024, 1)
    let writes = 0
    while (source.write(chunk) && writes < 100) writes++
    await settle()
    // Held 256 KiB at most, plus what the two streams buffer: never the 6.4 MB a growing buffer would take.
    expect(writes).toBeLessThan(12)
    expect(gate.heldBytes).toBeLessThanOrEqual(256 * 1024 + chunk.byteLength)
    commit.frozen('s1')
    commit.release('s1')
    await settle()
    expect(out.text().length).toBeGreaterThan(0)
  })

  it('numbers bytes in the order they are read across connections', async () => {
    const commit = new OutputCommit(() => {})
    const server = net.createServer((s) => {
      s.write('x')
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const { port } = server.address() as net.AddressInfo
    const a = net.connect(port, '127.0.0.1')
    const gate_a = new OutputGate(commit)
    a.pipe(gate_a)
    const out_a = collect(gate_a)
    while (commit.waiting === 0) await settle()
    commit.frozen('s1')
    const b = net.connect(port, '127.0.0.1')
    const gate_b = new OutputGate(commit)
    b.pipe(gate_b)
    const out_b = collect(gate_b)
    while (commit.waiting < 2) await settle()
    commit.release('s1')
    await settle()
    expect(out_a.text()).toBe('x')
    expect(out_b.text()).toBe('') // read after s1's freeze
    a.destroy()
    b.destroy()
    server.close()
  })
})

describe('OutputCommit.cover: a capture that found the state of a stored snapshot', () => {
  it('waits for that snapshot when it is not released yet, then goes with it', async () => {
    const commit = new OutputCommit(() => {})
    const gate = new OutputGate(commit)
    const out = collect(gate)
    gate.write('250 queued\r\n')
    await settle()
    commit.frozen('s1') // the capture that stored the mail
    gate.write('221 bye\r\n')
    await settle()
    commit.frozen('s2') // found s1's state unchanged
    expect(commit.cover('s2', 's1')).toBeNull() // nothing may go before s1 is on k
    await settle()
    expect(out.text()).toBe('')
    commit.release('s2') // s2 is no snapshot any more: its release moves nothing
    await settle()
    expect(out.text()).toBe('')
    commit.release('s1')
    await settle()
    expect(out.text()).toBe('250 queued\r\n221 bye\r\n')
  })

  it('releases at once when that snapshot was released', async () => {
    const commit = new OutputCommit(() => {})
    const gate = new OutputGate(commit)
    const out = collect(gate)
    commit.frozen('s1')
    commit.release('s1')
    gate.write('250 ok\r\n')
    await settle()
    commit.frozen('s2')
    gate.write('250 later\r\n') // after the freeze: not covered by s2
    await settle()
    expect(commit.cover('s2', 's1')).toMatchObject({ chunks: 1 })
    await settle()
    expect(out.text()).toBe('250 ok\r\n')
    expect(commit.waiting).toBe(1)
  })

  it('refuses a snapshot that is neither released nor waiting (the caller stores its own)', async () => {
    const commit = new OutputCommit(() => {})
    const gate = new OutputGate(commit)
    const out = collect(gate)
    commit.frozen('s1')
    commit.frozen('s2')
    commit.release('s2') // s1 is superseded: no longer a mark, not the released one
    gate.write('250 ok\r\n')
    await settle()
    commit.frozen('s3')
    expect(commit.cover('s3', 's1')).toBe(false)
    expect(commit.cover('s3', 'unknown')).toBe(false)
    await settle()
    expect(out.text()).toBe('')
    commit.release('s3') // its own mark is still there
    await settle()
    expect(out.text()).toBe('250 ok\r\n')
  })
})

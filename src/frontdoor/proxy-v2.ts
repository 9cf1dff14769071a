import net from 'node:net'

/** The 12-byte signature every PROXY protocol v2 header starts with (haproxy's proxy-protocol.txt). */
const SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a])
const VERSION_2_PROXY = 0x21
const VERSION_2_LOCAL = 0x20
const TCP_OVER_IPV4 = 0x11
const TCP_OVER_IPV6 = 0x21

export interface Endpoint {
  host: string
  port: number
}

/** An IPv4-mapped IPv6 address (::ffff:a.b.c.d, how a dual-stack socket names an IPv4 peer) as IPv4. */
function unmapped(host: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host)
  return m ? m[1]! : host
}

function ipv6Bytes(host: string): Buffer {
  // Expand "::" then write eight 16-bit groups.
  const [head = '', tail = ''] = host.includes('::') ? host.split('::') : [host, '']
  const left = head ? head.split(':') : []
  const right = tail ? tail.split(':') : []
  const groups = [...left, ...Array(8 - left.length - right.length).fill('0'), ...right]
  const out = Buffer.alloc(16)
  for (const [i, g] of groups.entries()) out.writeUInt16BE(Number.parseInt(g, 16), i * 2)
  return out
}

/**
 * A PROXY protocol v2 header for a TCP connection from `source` (the client) to `destination` (the
 * front door it reached). Two addresses of different families (or one that is not an IP address)
 * give a LOCAL header: the service then uses the connection's own addresses.
 */
export function proxyV2Header(source: Endpoint, destination: Endpoint): Buffer {
  const src = unmapped(source.host)
  const dst = unmapped(destination.host)
  const family = net.isIP(src)
  if (
    family === 0 ||
    family !== net.isIP(dst) ||
    (family === 6 && (src.includes('.') || dst.includes('.')))
  ) {
    return Buffer.concat([SIGNATURE, Buffer.from([VERSION_2_LOCAL, 0x00, 0x00, 0x00])])
  }
  const addresses =
    family === 4
      ? Buffer.concat([Buffer.from(src.split('.').map(Number)), Buffer.from(dst.split('.').map(Number))])
      : Buffer.concat([ipv6Bytes(src), ipv6Bytes(dst)])
  const ports = Buffer.alloc(4)
  ports.writeUInt16BE(source.port, 0)
  ports.writeUInt16BE(destination.port, 2)
  const length = Buffer.alloc(2)
  length.writeUInt16BE(addresses.byteLength + 4, 0)
  return Buffer.concat([
    SIGNATURE,
    Buffer.from([VERSION_2_PROXY, family === 4 ? TCP_OVER_IPV4 : TCP_OVER_IPV6]),
    length,
    addresses,
    ports,
  ])
}

/**
 * DHT bootstrap nodes are written `host:port` everywhere a person sees them (config file, --bootstrap,
 * status); `{host, port}` objects, the form of older config files, are read too. The overlay takes
 * objects (parseHostPort).
 */
export interface HostPort {
  host: string
  port: number
}

/** What a person is told a bootstrap node looks like. */
export const HOST_PORT_FORM = 'a "host:port" string such as "192.0.2.7:49737" ({host, port} is read too)'

const HOST_PORT = /^([^\s:]+):(\d{1,5})$/

const validPort = (port: unknown): port is number =>
  typeof port === 'number' && Number.isInteger(port) && port >= 1 && port <= 65_535

/** `host:port` (or a {host, port} object) as an object; null when it is neither. */
export function parseHostPort(value: unknown): HostPort | null {
  if (typeof value === 'string') {
    const match = HOST_PORT.exec(value.trim())
    const port = Number(match?.[2])
    return match && validPort(port) ? { host: match[1]!, port } : null
  }
  if (value === null || typeof value !== 'object') return null
  const { host, port, ...rest } = value as Record<string, unknown>
  if (Object.keys(rest).length > 0 || typeof host !== 'string' || !validPort(port)) return null
  return HOST_PORT.test(`${host}:${port}`) ? { host, port } : null
}

export function formatHostPort(node: HostPort): string {
  return `${node.host}:${node.port}`
}

/** The canonical `host:port` of a string or object, or null when it is neither. */
export function hostPortText(value: unknown): string | null {
  const node = parseHostPort(value)
  return node === null ? null : formatHostPort(node)
}

/** Where a new client connection goes now: this node's service, another node's front door, or wait. */
export type Route = { kind: 'local' } | { kind: 'remote'; key: string } | null

/** What the route is decided from: the core's view of this node and of the server it follows. */
export interface RouteView {
  id: string
  role: string
  /** This node's service health (the core's: 'ok' once a probe answered, 'unknown' before the first). */
  health: string
  /** The server this node follows (itself while serving), or null. */
  server: string | null
  /** That server as a peer (null: not a known peer). */
  server_peer: { reachable: boolean; role: string } | null
  /** The driver's `connect_proves_listening`: a connection that goes through reached the service. */
  connect_proves_listening: boolean
}

/**
 * This node's service while it serves and answers; the server it follows while that server is
 * reachable and says it serves; else nowhere (held). A freshly restored service that no probe has
 * answered yet counts as answering when a connection to it proves it listens (a process's own port):
 * the front door then tries it and holds the client again while it refuses, so clients reach it the
 * moment it listens rather than at the first probe that passes (a helper process: up to a second later
 * on a loaded machine). A service whose probe failed ('down') is never tried.
 */
export function chooseRoute(view: RouteView): Route {
  if (view.role === 'server') {
    if (view.health === 'ok') return { kind: 'local' }
    return view.health === 'unknown' && view.connect_proves_listening ? { kind: 'local' } : null
  }
  const server = view.server
  if (server === null || server === view.id) return null
  const peer = view.server_peer
  return peer?.reachable && peer.role === 'server' ? { kind: 'remote', key: server } : null
}

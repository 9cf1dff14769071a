/** Where a new client connection goes now: this node's service, another node's front door, or wait. */
export type Route = { kind: 'local' } | { kind: 'remote'; key: string } | null

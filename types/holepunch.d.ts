// Ambient declarations for the untyped Holepunch modules, covering only what Sustain uses.
// Versions: hyperswarm 4.17.2, hyperdht 6.34.0, hypercore 11.37.1, corestore 7.12.5, protomux 3.12.1.

declare module 'hyperdht' {
  import type { EventEmitter } from 'node:events'

  export interface KeyPair {
    publicKey: Buffer
    secretKey: Buffer
  }
  export interface HostPort {
    host: string
    port: number
  }
  export interface HyperDHTOptions {
    bootstrap?: HostPort[] | string[]
    host?: string
    port?: number
    ephemeral?: boolean
    firewalled?: boolean
    keyPair?: KeyPair
    connectionKeepAlive?: number | false
  }
  export default class HyperDHT extends EventEmitter {
    constructor(options?: HyperDHTOptions)
    static keyPair(seed?: Buffer): KeyPair
    /** A persistent DHT node on a fixed host:port that other nodes bootstrap from (dht-rpc). */
    static bootstrapper(port: number, host: string, options?: HyperDHTOptions): HyperDHT
    readonly defaultKeyPair: KeyPair
    fullyBootstrapped(): Promise<void>
    address(): { host: string; port: number }
    connect(remotePublicKey: Buffer, options?: { keyPair?: KeyPair }): import('hyperswarm').SecretStream
    destroy(options?: { force?: boolean }): Promise<void>
  }
}

declare module 'hyperdht/testnet.js' {
  import type HyperDHT from 'hyperdht'
  import type { HostPort, HyperDHTOptions } from 'hyperdht'

  export interface Testnet {
    nodes: HyperDHT[]
    bootstrap: HostPort[]
    createNode(options?: HyperDHTOptions): HyperDHT
    destroy(): Promise<void>
  }
  export default function createTestnet(
    size?: number,
    options?: { host?: string; port?: number; bootstrap?: HostPort[] },
  ): Promise<Testnet>
}

declare module 'hyperswarm' {
  import type { EventEmitter } from 'node:events'
  import type { Duplex } from 'node:stream'
  import type HyperDHT from 'hyperdht'
  import type { KeyPair } from 'hyperdht'

  /** @hyperswarm/secret-stream: an encrypted, authenticated duplex over UDX. */
  export interface SecretStream extends Duplex {
    readonly isInitiator: boolean
    readonly publicKey: Buffer
    readonly remotePublicKey: Buffer
    /** Noise handshake hash; null until the handshake completes. */
    readonly handshakeHash: Buffer | null
    readonly rawStream: { remoteHost?: string; remotePort?: number } | null
    userData: unknown
    opened: Promise<boolean>
    setKeepAlive(ms: number): void
    setTimeout(ms: number): void
    /** Resolves true once every write so far was acknowledged by the remote (UDX), false if destroyed. */
    flush(): Promise<boolean>
  }
  export interface PeerInfo {
    publicKey: Buffer
    topics: Buffer[]
    client: boolean
    ban(banned?: boolean): void
  }
  export interface PeerDiscoverySession {
    flushed(): Promise<void>
    refresh(options?: { client?: boolean; server?: boolean }): Promise<void>
    destroy(): Promise<void>
  }
  export interface HyperswarmOptions {
    dht?: HyperDHT
    keyPair?: KeyPair
    maxPeers?: number
    /** Parallel outgoing dials (default 3). */
    maxParallel?: number
    firewall?: (remotePublicKey: Buffer, payload: unknown) => boolean
  }
  export default class Hyperswarm extends EventEmitter {
    constructor(options?: HyperswarmOptions)
    readonly keyPair: KeyPair
    readonly dht: HyperDHT
    readonly connections: Set<SecretStream>
    /** Known peers by public key (hex). */
    readonly peers: Map<string, PeerInfo>
    readonly destroyed: boolean
    join(topic: Buffer, options?: { server?: boolean; client?: boolean }): PeerDiscoverySession
    leave(topic: Buffer): Promise<void>
    joinPeer(publicKey: Buffer): void
    leavePeer(publicKey: Buffer): void
    flush(): Promise<void>
    destroy(options?: { force?: boolean }): Promise<void>
    on(event: 'connection', listener: (conn: SecretStream, info: PeerInfo) => void): this
    on(event: string, listener: (...args: any[]) => void): this
  }
}

declare module 'hypercore' {
  import type { EventEmitter } from 'node:events'
  import type { KeyPair } from 'hyperdht'

  export interface HypercoreManifest {
    version?: number
    signers: { publicKey: Buffer; signature?: string; namespace?: Buffer }[]
  }
  export interface Download {
    done(): Promise<void>
    destroy(): void
  }
  export interface HypercorePeer {
    remotePublicKey: Buffer
  }
  export default class Hypercore extends EventEmitter {
    static key(manifest: HypercoreManifest | Buffer, options?: { version?: number }): Buffer
    static discoveryKey(key: Buffer): Buffer
    constructor(storage: string, key?: Buffer)
    readonly key: Buffer
    readonly discoveryKey: Buffer
    readonly length: number
    readonly contiguousLength: number
    readonly byteLength: number
    readonly writable: boolean
    readonly closed: boolean
    readonly peers: HypercorePeer[]
    readonly padding: number
    ready(): Promise<void>
    append(blocks: Uint8Array | Uint8Array[]): Promise<{ length: number; byteLength: number }>
    get(
      index: number,
      options?: { wait?: boolean; timeout?: number; decrypt?: boolean },
    ): Promise<Buffer | null>
    has(start: number, end?: number): Promise<boolean>
    clear(start: number, end?: number): Promise<unknown>
    update(options?: { wait?: boolean }): Promise<boolean>
    download(range?: { start?: number; end?: number; blocks?: number[]; linear?: boolean }): Download
    /** A replication stream (initiator or not), or replication over an existing secret stream. */
    replicate(stream: boolean | import('node:stream').Duplex | object): import('node:stream').Duplex
    close(): Promise<void>
    on(event: 'append', listener: () => void): this
    on(event: 'peer-add' | 'peer-remove', listener: (peer: HypercorePeer) => void): this
    on(
      event: 'download' | 'upload',
      listener: (index: number, bytes: number, from: HypercorePeer) => void,
    ): this
    on(event: string, listener: (...args: any[]) => void): this
  }
  export type { KeyPair }
}

declare module 'corestore' {
  import type { EventEmitter } from 'node:events'
  import type Hypercore from 'hypercore'
  import type { KeyPair } from 'hyperdht'

  export interface CorestoreGetOptions {
    name?: string
    key?: Buffer
    keyPair?: KeyPair
    encryption?: { key: Buffer } | null
    valueEncoding?: unknown
  }
  export default class Corestore extends EventEmitter {
    constructor(storage: string, options?: Record<string, unknown>)
    get(options: CorestoreGetOptions): Hypercore
    replicate(stream: unknown): unknown
    ready(): Promise<void>
    close(): Promise<void>
  }
}

declare module 'protomux' {
  import type { Duplex } from 'node:stream'

  export interface ProtomuxMessage<T = Buffer> {
    send(message: T): boolean
  }
  export interface ProtomuxChannel {
    readonly opened: boolean
    readonly closed: boolean
    open(handshake?: unknown): void
    close(): void
    cork(): void
    uncork(): void
    addMessage<T = Buffer>(options: {
      encoding?: unknown
      onmessage?: (message: T, channel: ProtomuxChannel) => void
    }): ProtomuxMessage<T>
  }
  export default class Protomux {
    static from(stream: Duplex): Protomux
    readonly stream: Duplex
    createChannel(options: {
      protocol: string
      id?: Buffer | null
      unique?: boolean
      handshake?: unknown
      onopen?: (handshake: unknown) => void
      /** isRemote: the other side closed (or rejected) the channel. */
      onclose?: (isRemote: boolean) => void
      ondestroy?: () => void
    }): ProtomuxChannel | null
    /** Called when the remote opens a channel of `protocol` (any id when id is null); awaited. */
    pair(options: { protocol: string; id?: Buffer | null }, notify: (id: Buffer | null) => unknown): void
    unpair(options: { protocol: string; id?: Buffer | null }): void
  }
}

declare module 'hypercore/lib/session-state.js' {
  /** Internal per-session state of a hypercore; only what overlay/hypercore-patches/keep-tree-nodes.ts patches. */
  export default class SessionState {
    clear(...args: unknown[]): Promise<unknown>
    createWriteBatch(): { deleteTreeNode(index: number): void }
  }
}

declare module '@hyperswarm/secret-stream' {
  import type { Duplex } from 'node:stream'
  import type { KeyPair } from 'hyperdht'
  import type { SecretStream as Conn } from 'hyperswarm'

  /** The Noise secret stream hyperswarm wraps its connections in; here over any duplex (a TCP socket). */
  const NoiseSecretStream: new (
    isInitiator: boolean,
    rawStream: Duplex,
    options?: { keyPair?: KeyPair; remotePublicKey?: Buffer },
  ) => Conn
  export default NoiseSecretStream
}

import { PassThrough } from 'node:stream'

/**
 * The one place every byte the service sends to a client passes through on the server, whether the
 * client is local or forwarded from another node's front door. Today it passes bytes at once. Output
 * commit (zero-loss mode) will hold them here until a snapshot taken after they were produced is
 * stored on k candidates; since it is a stream with the usual backpressure, holding bytes here pauses
 * the service's socket rather than growing a buffer.
 */
export class OutputGate extends PassThrough {
  constructor() {
    // Small: the service's socket and the far side's window do the buffering.
    super({ highWaterMark: 16 * 1024 })
  }
}

import { EventEmitter } from 'node:events'

export interface DemoFeedEvents {
  line: [line: string]
  attach: [socket_path: string, node: string]
  finished: [report: string]
}

/**
 * What `sustain demo` tells the UI while its scenario runs: narration lines, which node's control
 * socket to watch (a node that survives the kill), and the end of the scenario (the UI stops watching
 * before the federation is torn down, so the last view stays on screen).
 */
export class DemoFeed extends EventEmitter<DemoFeedEvents> {
  readonly lines: string[] = []
  attached: { socket_path: string; node: string } | null = null
  report: string | null = null

  readonly say = (line: string): void => {
    this.lines.push(line)
    this.emit('line', line)
  }

  attach(socket_path: string, node: string): void {
    this.attached = { socket_path, node }
    this.emit('attach', socket_path, node)
  }

  finish(report: string): void {
    this.report = report
    this.emit('finished', report)
  }
}

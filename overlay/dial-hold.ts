import assert from 'node:assert/strict'

/** Hold lengths after a peer's connection closed: the first, then after each failed return. */
export const DIAL_HOLD_STEPS_MS = [2000, 5000, 15_000, 60_000] as const

interface Hold {
  step: number
  until_ms: number
  /** While > 0 the hold is released and the peer has until then to be admitted again. */
  probe_until_ms: number
}

/**
 * Which peers not to dial (or accept) for a while. A dead peer's announcement stays in the DHT for
 * minutes, and hyperswarm redials every peer each rediscovery finds; each dial to a dead peer holds one
 * of the few parallel dial slots for ~8 s, so a handful of dead peers kept a live newcomer from being
 * dialled for minutes. A peer whose connection closed is held (hyperswarm's firewall refuses it), then
 * released for one probe window; if it is not admitted again within it, it is held longer.
 */
export class DialHold {
  private readonly holds = new Map<string, Hold>()

  constructor(
    private readonly options: {
      /** Let hyperswarm dial the peer again (unban it). */
      release: (key: string) => void
      /** How long a released peer has to come back: one rediscovery plus a live dial. */
      probe_window_ms: number
      now_ms: () => number
    },
  ) {
    assert(options.probe_window_ms > 0, 'probe window must be positive')
  }

  /** The connection to `key` closed: hold it (longer if it already failed to come back). */
  closed(key: string): void {
    const previous = this.holds.get(key)
    const step = previous ? Math.min(previous.step + 1, DIAL_HOLD_STEPS_MS.length - 1) : 0
    this.holds.set(key, {
      step,
      until_ms: this.options.now_ms() + DIAL_HOLD_STEPS_MS[step]!,
      probe_until_ms: 0,
    })
  }

  /** `key` was admitted: it is alive, forget its history. */
  admitted(key: string): void {
    this.holds.delete(key)
  }

  /** Forget every hold (the node was isolated on purpose: its peers did not fail). */
  clear(): void {
    this.holds.clear()
  }

  isHeld(key: string): boolean {
    const hold = this.holds.get(key)
    return hold !== undefined && hold.probe_until_ms === 0
  }

  /** Release expired holds; hold again, longer, the peers that did not come back in their window. */
  tick(): void {
    const now = this.options.now_ms()
    for (const [key, hold] of this.holds) {
      if (hold.probe_until_ms === 0 && now >= hold.until_ms) {
        hold.probe_until_ms = now + this.options.probe_window_ms
        this.options.release(key)
      } else if (hold.probe_until_ms > 0 && now >= hold.probe_until_ms) {
        this.closed(key)
      }
    }
  }

  get size(): number {
    return this.holds.size
  }
}

/**
 * Key Vault's service limits per vault: per window (10 s), a budget for
 * certificate/secret create and import together and one for every other
 * transaction. A throttled request gets 429 with Retry-After and does not count.
 */
export interface ThrottleLimits {
  /** Window length in milliseconds (Key Vault: 10,000). */
  readonly windowMs: number
  /** Create + import per window (Key Vault: 300). */
  readonly writes: number
  /** Every other transaction per window (Key Vault: 4,000; older documentation says 2,000). */
  readonly others: number
}

export const KEY_VAULT_LIMITS: ThrottleLimits = { windowMs: 10_000, writes: 300, others: 4_000 }

class SlidingWindow {
  private readonly stamps: number[] = []
  private head = 0
  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
  ) {}
  /** Records and returns 0 when allowed; else the milliseconds until a slot frees. */
  take(now: number): number {
    while (this.head < this.stamps.length && (this.stamps[this.head] ?? 0) <= now - this.windowMs) this.head++
    if (this.head > 4096) {
      this.stamps.splice(0, this.head)
      this.head = 0
    }
    const live = this.stamps.length - this.head
    if (live >= this.limit) {
      const oldest = this.stamps[this.head] ?? now
      return Math.max(1, oldest + this.windowMs - now)
    }
    this.stamps.push(now)
    return 0
  }
}

export class VaultThrottle {
  private readonly writes: SlidingWindow
  private readonly others: SlidingWindow
  constructor(readonly limits: ThrottleLimits) {
    this.writes = new SlidingWindow(limits.writes, limits.windowMs)
    this.others = new SlidingWindow(limits.others, limits.windowMs)
  }
  /** 0 when the request may proceed; else Retry-After in whole seconds. */
  take(kind: "write" | "other", now = Date.now()): number {
    const waitMs = (kind === "write" ? this.writes : this.others).take(now)
    return waitMs === 0 ? 0 : Math.ceil(waitMs / 1000)
  }
}

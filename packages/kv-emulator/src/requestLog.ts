/**
 * Every request the emulator answered: which vault and operation, method, path,
 * status, latency, whether it was the challenge 401, which fault (if any) was
 * injected, and a summary of the body with no secret in it (the import's policy,
 * attributes, tags and order flag; the size and SHA-256 of the value, whether a
 * password was sent) so an adapter test can prove what reached the wire.
 */
export interface RequestSummary {
  /** The policy object exactly as sent (import, create, policy update, update). */
  readonly policy?: unknown
  readonly attributes?: unknown
  readonly tags?: unknown
  readonly preserveCertOrder?: unknown
  /** Length in characters of `value` (import / set secret) and its SHA-256, hex. */
  readonly valueLength?: number
  readonly valueSha256?: string
  /** Whether `value` looked like PEM text. */
  readonly valueIsPem?: boolean
  /** Whether a non-empty `pwd` was sent (never the password). */
  readonly passwordSent?: boolean
  /** Body keys present at the top level. */
  readonly keys?: ReadonlyArray<string>
}

export interface RequestLogEntry {
  readonly seq: number
  /** Epoch milliseconds when the request arrived. */
  readonly time: number
  /** Vault name, or "entra" / "managed-identity" / "admin". */
  readonly vault: string
  readonly operation: string
  readonly method: string
  readonly path: string
  readonly query: string
  readonly status: number
  readonly latencyMs: number
  /** The 401 with a WWW-Authenticate challenge to a request without a token. */
  readonly challenge: boolean
  /** Client id of the authenticated principal, when there was one. */
  readonly principal?: string
  /** Error code of the answer, when it was an error. */
  readonly errorCode?: string
  /** The fault injected into this request, when one was. */
  readonly fault?: string
  /**
   * The connection was dropped without an answer (status is 0): by a `drop` fault, or by the client
   * before its body was read (its timeout during a fault's delay; the operation did not run).
   */
  readonly dropped?: boolean
  readonly request?: RequestSummary
}

export type RequestLogFilter = Partial<
  Pick<RequestLogEntry, "vault" | "operation" | "method" | "status" | "challenge">
> & {
  readonly since?: number
}

/**
 * The newest `limit` entries (default 100,000). Entries past the limit are
 * dropped from the front lazily: `head` marks the first live one and the
 * array is compacted once half of it is dead, so a full log costs O(1) per
 * request rather than moving 100,000 pointers on every one.
 */
export class RequestLog {
  private items: RequestLogEntry[] = []
  private head = 0
  private seq = 0
  private active = 0
  private idleWaiters: Array<() => void> = []
  constructor(private readonly limit = 100_000) {}

  /**
   * A request has arrived: in flight until `settle`. An entry is added when its answer is sent,
   * after any delay a fault puts before it, so a request the client gave up on (its timeout, an
   * abort) is logged later than the client's call ends: `idle` waits for it.
   */
  begin(): void {
    this.active++
  }

  /** A request `begin` counted is over (logged, or its handling ended without an answer). */
  settle(): void {
    this.active = Math.max(0, this.active - 1)
    if (this.active === 0) {
      const waiters = this.idleWaiters
      this.idleWaiters = []
      for (const resolve of waiters) resolve()
    }
  }

  /** Requests arrived and not yet over. */
  inFlight(): number {
    return this.active
  }

  /** Resolves once no request is in flight (at once when none is): every request sent so far is logged. */
  idle(): Promise<void> {
    return this.active === 0 ? Promise.resolve() : new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  nextSeq(): number {
    return ++this.seq
  }

  add(entry: RequestLogEntry): void {
    this.items.push(entry)
    if (this.items.length - this.head > this.limit) {
      this.head++
      if (this.head >= this.limit) {
        this.items = this.items.slice(this.head)
        this.head = 0
      }
    }
  }

  entries(filter: RequestLogFilter = {}): ReadonlyArray<RequestLogEntry> {
    const live = this.head === 0 ? this.items : this.items.slice(this.head)
    return live.filter(
      (e) =>
        (filter.vault === undefined || e.vault === filter.vault) &&
        (filter.operation === undefined || e.operation === filter.operation) &&
        (filter.method === undefined || e.method === filter.method) &&
        (filter.status === undefined || e.status === filter.status) &&
        (filter.challenge === undefined || e.challenge === filter.challenge) &&
        (filter.since === undefined || e.seq > filter.since),
    )
  }

  count(filter: RequestLogFilter = {}): number {
    return this.entries(filter).length
  }

  /** The sequence number of the last entry; pass it as `since` to see only later requests. */
  mark(): number {
    return this.seq
  }

  clear(): void {
    this.items = []
    this.head = 0
  }
}

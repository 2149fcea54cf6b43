interface Exchange {
  expiresAtMs: number;
  /** What a duplicate gets: the piggybacked answer, or the empty ACK of a separate response. */
  reply: Buffer | undefined;
}

export interface ExchangeTableOptions {
  /** Answered exchanges of authenticated requests; requests in flight are bounded by this too. */
  maxEntries: number;
  /** Bound on the stored replies' bytes; the oldest exchanges go first. */
  maxBytes: number;
  nowMs: () => number;
  onEvict?: (which: 'in_flight' | 'authenticated' | 'unauthenticated') => void;
}

/** Answered exchanges of requests nobody authenticated get this share of the bounds. */
const UNAUTHENTICATED_SHARE = 8;

/**
 * Exchanges by (endpoint, message ID) for EXCHANGE_LIFETIME (confirmable) or NON_LIFETIME
 * (RFC 7252 section 4.5), so a retransmitted request gets the stored reply, or joins the exchange
 * in flight, and never reaches the backend twice.
 *
 * Bounded by count and bytes, oldest first, in three tables so that a flood cannot push out a
 * device's state: requests in flight; answered requests that were authenticated; and answered
 * requests nobody authenticated (refusals, logins that failed), which share an eighth of the
 * bounds among themselves, so forged datagrams only ever evict each other.
 */
export class ExchangeTable {
  readonly #inFlight = new Map<string, Exchange>();
  readonly #authenticated = new Map<string, Exchange>();
  readonly #unauthenticated = new Map<string, Exchange>();
  readonly #options: ExchangeTableOptions;
  #bytes = 0;
  #unauthenticatedBytes = 0;

  constructor(options: ExchangeTableOptions) {
    this.#options = options;
  }

  get size(): number {
    return this.#inFlight.size + this.#authenticated.size + this.#unauthenticated.size;
  }

  get bytes(): number {
    return this.#bytes + this.#unauthenticatedBytes;
  }

  /** Returns the existing exchange, or records a new one (in flight) and returns undefined. */
  begin(key: string, lifetimeMs: number): Exchange | undefined {
    const now = this.#options.nowMs();
    this.#prune(now);
    const existing = this.#inFlight.get(key) ?? this.#authenticated.get(key) ?? this.#unauthenticated.get(key);
    if (existing !== undefined && existing.expiresAtMs > now) return existing;
    if (existing !== undefined) this.#forget(key);
    if (this.#inFlight.size >= this.#options.maxEntries) this.#evictOldest(this.#inFlight, 'in_flight');
    this.#inFlight.set(key, { expiresAtMs: now + lifetimeMs, reply: undefined });
    return undefined;
  }

  /** While the request is in flight: what a duplicate gets meanwhile (the empty ACK). */
  setReply(key: string, datagram: Buffer): void {
    const entry = this.#inFlight.get(key);
    if (entry !== undefined) entry.reply = copy(datagram);
  }

  /**
   * The request is answered: keep `datagram` (or the reply set while in flight) for duplicates,
   * among the authenticated exchanges or the others.
   */
  complete(key: string, datagram: Buffer | undefined, authenticated: boolean): void {
    const entry = this.#inFlight.get(key);
    if (entry === undefined) return;
    this.#inFlight.delete(key);
    if (datagram !== undefined) entry.reply = copy(datagram);
    const size = entry.reply?.length ?? 0;
    if (authenticated) {
      this.#authenticated.set(key, entry);
      this.#bytes += size;
      while (this.#authenticated.size > this.#options.maxEntries || (this.#bytes > this.#options.maxBytes && this.#authenticated.size > 1)) {
        this.#evictOldest(this.#authenticated, 'authenticated');
      }
    } else {
      this.#unauthenticated.set(key, entry);
      this.#unauthenticatedBytes += size;
      const maxEntries = Math.max(1, Math.floor(this.#options.maxEntries / UNAUTHENTICATED_SHARE));
      const maxBytes = Math.floor(this.#options.maxBytes / UNAUTHENTICATED_SHARE);
      while (this.#unauthenticated.size > maxEntries || (this.#unauthenticatedBytes > maxBytes && this.#unauthenticated.size > 1)) {
        this.#evictOldest(this.#unauthenticated, 'unauthenticated');
      }
    }
  }

  clear(): void {
    this.#inFlight.clear();
    this.#authenticated.clear();
    this.#unauthenticated.clear();
    this.#bytes = 0;
    this.#unauthenticatedBytes = 0;
  }

  #forget(key: string): void {
    this.#deleteFrom(this.#inFlight, key);
    this.#deleteFrom(this.#authenticated, key);
    this.#deleteFrom(this.#unauthenticated, key);
  }

  #deleteFrom(table: Map<string, Exchange>, key: string): void {
    const entry = table.get(key);
    if (entry === undefined) return;
    table.delete(key);
    const size = entry.reply?.length ?? 0;
    if (table === this.#authenticated) this.#bytes -= size;
    else if (table === this.#unauthenticated) this.#unauthenticatedBytes -= size;
  }

  #evictOldest(table: Map<string, Exchange>, which: 'in_flight' | 'authenticated' | 'unauthenticated'): void {
    const oldest = table.keys().next();
    if (oldest.done === true) return;
    this.#deleteFrom(table, oldest.value);
    this.#options.onEvict?.(which);
  }

  // Entries are inserted in time order, so expired ones gather at the head of each table (a NON's
  // shorter lifetime may keep it a little longer behind a CON: bounded all the same).
  #prune(now: number): void {
    for (const table of [this.#authenticated, this.#unauthenticated, this.#inFlight]) {
      for (const [key, entry] of table) {
        if (entry.expiresAtMs > now) break;
        this.#deleteFrom(table, key);
      }
    }
  }
}

// A copy from Node's shared buffer pool: kept for minutes by the thousand, a reply of its own
// ArrayBuffer costs a few hundred bytes of bookkeeping more than its bytes.
function copy(datagram: Buffer): Buffer {
  const reply = Buffer.allocUnsafe(datagram.length);
  datagram.copy(reply);
  return reply;
}

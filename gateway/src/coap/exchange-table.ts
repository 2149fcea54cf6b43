interface Exchange {
  expiresAtMs: number;
  /** What a duplicate gets: the piggybacked answer, or the empty ACK of a separate response. */
  reply: Buffer | undefined;
}

export interface ExchangeTableOptions {
  maxEntries: number;
  /** Bound on the stored replies' bytes; the oldest exchanges go first. */
  maxBytes: number;
  nowMs: () => number;
  onEvict?: () => void;
}

/**
 * Exchanges by (endpoint, message ID) for EXCHANGE_LIFETIME (confirmable) or NON_LIFETIME
 * (RFC 7252 section 4.5), so a retransmitted request gets the stored reply, or joins the exchange
 * in flight, and never reaches the backend twice. Bounded by count and bytes: the oldest go first.
 */
export class ExchangeTable {
  readonly #entries = new Map<string, Exchange>();
  readonly #options: ExchangeTableOptions;
  #bytes = 0;

  constructor(options: ExchangeTableOptions) {
    this.#options = options;
  }

  get size(): number {
    return this.#entries.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Returns the existing exchange, or records a new one and returns undefined. */
  begin(key: string, lifetimeMs: number): Exchange | undefined {
    const now = this.#options.nowMs();
    this.#prune(now);
    const existing = this.#entries.get(key);
    if (existing !== undefined && existing.expiresAtMs > now) return existing;
    if (existing !== undefined) this.#delete(key);
    if (this.#entries.size >= this.#options.maxEntries) this.#evictOldest();
    this.#entries.set(key, { expiresAtMs: now + lifetimeMs, reply: undefined });
    return undefined;
  }

  /** Sets (or replaces) the reply that duplicates of this exchange get. */
  setReply(key: string, datagram: Buffer): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    // A copy from Node's shared buffer pool: kept for minutes by the thousand, a reply of its own
    // ArrayBuffer costs a few hundred bytes of bookkeeping more than its bytes.
    const reply = Buffer.allocUnsafe(datagram.length);
    datagram.copy(reply);
    this.#bytes += reply.length - (entry.reply?.length ?? 0);
    entry.reply = reply;
    while (this.#bytes > this.#options.maxBytes && this.#entries.size > 1) this.#evictOldest();
  }

  clear(): void {
    this.#entries.clear();
    this.#bytes = 0;
  }

  #delete(key: string): void {
    const entry = this.#entries.get(key);
    if (entry?.reply !== undefined) this.#bytes -= entry.reply.length;
    this.#entries.delete(key);
  }

  #evictOldest(): void {
    const oldest = this.#entries.keys().next();
    if (oldest.done === true) return;
    this.#delete(oldest.value);
    this.#options.onEvict?.();
  }

  // Entries are inserted in time order, so expired ones gather at the head (a NON's shorter
  // lifetime may keep it a little longer behind a CON: bounded all the same).
  #prune(now: number): void {
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAtMs > now) return;
      this.#delete(key);
    }
  }
}

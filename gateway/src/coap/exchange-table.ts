import type { CoapResponse } from './types.ts';

type Exchange =
  | { state: 'pending'; expiresAtMs: number }
  | { state: 'done'; expiresAtMs: number; response: CoapResponse };

export interface ExchangeTableOptions {
  lifetimeMs: number;
  maxEntries: number;
  /** Bound on the stored answers' payload bytes; the oldest exchanges go first. */
  maxBytes: number;
  nowMs: () => number;
}

/**
 * Exchanges by (endpoint, message ID), kept for EXCHANGE_LIFETIME (RFC 7252 section 4.5), so a
 * retransmitted request joins the exchange in flight or gets the stored answer, and never
 * reaches the backend twice. node-coap 1.5.0 only deduplicates piggybacked answers; this covers
 * separate responses too. Bounded: the oldest exchanges go first when full.
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

  /** Returns the existing exchange, or records a new pending one and returns undefined. */
  begin(key: string): Exchange | undefined {
    const now = this.#options.nowMs();
    this.#prune(now);
    const existing = this.#entries.get(key);
    if (existing !== undefined && existing.expiresAtMs > now) return existing;
    if (existing !== undefined) this.#delete(key);
    if (this.#entries.size >= this.#options.maxEntries) this.#deleteOldest();
    this.#entries.set(key, { state: 'pending', expiresAtMs: now + this.#options.lifetimeMs });
    return undefined;
  }

  complete(key: string, response: CoapResponse): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    this.#entries.set(key, { state: 'done', expiresAtMs: entry.expiresAtMs, response });
    this.#bytes += response.payload?.length ?? 0;
    while (this.#bytes > this.#options.maxBytes && this.#entries.size > 1) this.#deleteOldest();
  }

  clear(): void {
    this.#entries.clear();
    this.#bytes = 0;
  }

  #delete(key: string): void {
    const entry = this.#entries.get(key);
    if (entry?.state === 'done') this.#bytes -= entry.response.payload?.length ?? 0;
    this.#entries.delete(key);
  }

  #deleteOldest(): void {
    const oldest = this.#entries.keys().next();
    if (oldest.done !== true) this.#delete(oldest.value);
  }

  // Entries are inserted in time order, so expired ones are always at the head.
  #prune(now: number): void {
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAtMs > now) return;
      this.#delete(key);
    }
  }
}

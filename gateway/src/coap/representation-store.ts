import type { CoapResponse, Learned } from '../messages.ts';

export interface Representation {
  readonly response: CoapResponse & { payload: Buffer; etag: Buffer };
  /** Later blocks are served only to a request that carries the same Access-Token. */
  readonly accessToken: string | undefined;
  /** What the request it answers found out (who sent it, which route): later blocks answer with it. */
  readonly learned: Learned;
  readonly expiresAtMs: number;
}

export interface RepresentationStoreOptions {
  maxBytes: number;
  maxEntries: number;
  lifetimeMs: number;
  nowMs: () => number;
  onEvict?: () => void;
}

/**
 * Answers too large for one datagram, kept so that later Block2 requests (RFC 7959 section 2.4)
 * are served without calling the backend again, whatever CoAP token the device uses. Keyed by
 * endpoint and request key; bounded by bytes, count and time, oldest first.
 */
export class RepresentationStore {
  readonly #entries = new Map<string, Representation>();
  readonly #options: RepresentationStoreOptions;
  #bytes = 0;

  constructor(options: RepresentationStoreOptions) {
    this.#options = options;
  }

  get bytes(): number {
    return this.#bytes;
  }

  put(key: string, response: Representation['response'], accessToken: string | undefined, learned: Learned = {}): void {
    this.#delete(key);
    const size = response.payload.length;
    if (size > this.#options.maxBytes) return;
    while (this.#entries.size > 0 && (this.#bytes + size > this.#options.maxBytes || this.#entries.size >= this.#options.maxEntries)) {
      this.#delete(this.#entries.keys().next().value!);
      this.#options.onEvict?.();
    }
    this.#entries.set(key, { response, accessToken, learned, expiresAtMs: this.#options.nowMs() + this.#options.lifetimeMs });
    this.#bytes += size;
  }

  get(key: string): Representation | undefined {
    const now = this.#options.nowMs();
    for (const [oldest, entry] of this.#entries) {
      if (entry.expiresAtMs > now) break;
      this.#delete(oldest);
    }
    return this.#entries.get(key);
  }

  clear(): void {
    this.#entries.clear();
    this.#bytes = 0;
  }

  #delete(key: string): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    this.#entries.delete(key);
    this.#bytes -= entry.response.payload.length;
  }
}

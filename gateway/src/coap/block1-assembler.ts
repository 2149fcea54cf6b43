interface Assembly {
  readonly accessToken: string | undefined;
  readonly chunks: Buffer[];
  bytes: number;
  readonly expiresAtMs: number;
}

export interface Block1AssemblerOptions {
  /** Total bytes buffered over all uploads (RFC 7959 section 2.5 leaves the bound to the server). */
  maxBytes: number;
  maxEntries: number;
  lifetimeMs: number;
  nowMs: () => number;
  /** An upload dropped unfinished: its lifetime ran out, or the same request started again. */
  onEvict?: () => void;
  onBytesChanged?: (bytes: number) => void;
}

/**
 * Block1 uploads in progress, keyed by endpoint and request key (never by CoAP token). Only
 * uploads whose first block was admitted are here. When full, new uploads are refused rather
 * than older ones evicted, so a burst of uploads cannot push out a device's upload half-way.
 */
export class Block1Assembler {
  readonly #uploads = new Map<string, Assembly>();
  readonly #options: Block1AssemblerOptions;
  #bytes = 0;

  constructor(options: Block1AssemblerOptions) {
    this.#options = options;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get size(): number {
    return this.#uploads.size;
  }

  /** Starts (or restarts) an upload with its first block; false when the buffer is full. */
  start(key: string, accessToken: string | undefined, first: Buffer): boolean {
    this.#prune();
    if (this.#uploads.has(key)) this.#drop(key, true);
    if (this.#bytes + first.length > this.#options.maxBytes || this.#uploads.size >= this.#options.maxEntries) return false;
    this.#uploads.set(key, {
      accessToken, chunks: [Buffer.from(first)], bytes: first.length, expiresAtMs: this.#options.nowMs() + this.#options.lifetimeMs,
    });
    this.#add(first.length);
    return true;
  }

  get(key: string): Assembly | undefined {
    this.#prune();
    return this.#uploads.get(key);
  }

  /** Appends the next block; false (and the upload dropped) when the buffer is full. */
  append(key: string, chunk: Buffer): boolean {
    const upload = this.#uploads.get(key);
    if (upload === undefined) return false;
    if (this.#bytes + chunk.length > this.#options.maxBytes) {
      this.#drop(key, false);
      return false;
    }
    // A copy: the datagram's buffer is not ours to keep.
    upload.chunks.push(Buffer.from(chunk));
    upload.bytes += chunk.length;
    this.#add(chunk.length);
    return true;
  }

  /** The whole body, and the upload forgotten. */
  take(key: string): Buffer {
    const body = Buffer.concat(this.#uploads.get(key)?.chunks ?? []);
    this.#drop(key, false);
    return body;
  }

  delete(key: string): void {
    this.#drop(key, false);
  }

  clear(): void {
    this.#uploads.clear();
    this.#add(-this.#bytes);
  }

  #add(delta: number): void {
    this.#bytes += delta;
    this.#options.onBytesChanged?.(this.#bytes);
  }

  #drop(key: string, evicted: boolean): void {
    const upload = this.#uploads.get(key);
    if (upload === undefined) return;
    this.#uploads.delete(key);
    this.#add(-upload.bytes);
    if (evicted) this.#options.onEvict?.();
  }

  // Uploads are inserted in time order and all live equally long: the expired ones are at the head.
  #prune(): void {
    const now = this.#options.nowMs();
    for (const [key, upload] of this.#uploads) {
      if (upload.expiresAtMs > now) return;
      this.#drop(key, true);
    }
  }
}

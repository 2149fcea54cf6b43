import type { Learned } from '../messages.ts';

interface Assembly {
  readonly accessToken: string | undefined;
  /** What admitting block 0 found out (who sent it, which route): later blocks answer with it. */
  readonly learned: Learned;
  readonly chunks: Buffer[];
  bytes: number;
  /** Bytes set aside for the whole body when it started: its Size1, or the largest body allowed. */
  readonly reservedBytes: number;
  readonly maxBodyBytes: number;
  readonly anonymousEndpoint: string | undefined;
  readonly owner: string | undefined;
  readonly expiresAtMs: number;
}

export interface UploadStart {
  accessToken: string | undefined;
  first: Buffer;
  reservedBytes: number;
  /** The largest body the request may have (its route's, or a login's). */
  maxBodyBytes: number;
  /** Set for uploads nobody authenticated (a login body): their source; they share an eighth of the buffer. */
  anonymousEndpoint: string | undefined;
  /** The device an authenticated upload belongs to: at most `maxPerOwner` at once. */
  owner?: string | undefined;
  learned?: Learned;
}

export interface Block1AssemblerOptions {
  /** Bytes set aside over all uploads (RFC 7959 section 2.5 leaves the bound to the server). */
  maxBytes: number;
  maxEntries: number;
  /** Uploads one device may have under way at once (so one device cannot reserve the buffer). */
  maxPerOwner?: number;
  lifetimeMs: number;
  nowMs: () => number;
  /** An upload dropped unfinished: its lifetime ran out, or the same request started again. */
  onEvict?: () => void;
  onBytesChanged?: (bytes: number) => void;
}

/** Uploads under way per device at once, by default. */
const DEFAULT_MAX_PER_OWNER = 4;

/** Unauthenticated uploads (logins) share this part of the buffer and no more. */
const ANONYMOUS_SHARE = 8;

/**
 * Block1 uploads in progress, keyed by endpoint and request key (never by CoAP token). Only
 * uploads whose first block was admitted are here, and each sets aside room for its whole body
 * when it starts: when the buffer is full, new uploads are refused, and an upload under way always
 * has room to finish. Each owner (a device, or an unauthenticated source address) has four at
 * most at once, and uploads nobody authenticated share an eighth of the buffer, so they cannot
 * take it from devices that did authenticate.
 */
export class Block1Assembler {
  readonly #uploads = new Map<string, Assembly>();
  readonly #byOwner = new Map<string, number>();
  readonly #options: Block1AssemblerOptions;
  #bytes = 0;
  #reserved = 0;
  #anonymousReserved = 0;

  constructor(options: Block1AssemblerOptions) {
    this.#options = options;
  }

  /** Bytes buffered now. */
  get bytes(): number {
    return this.#bytes;
  }

  get size(): number {
    return this.#uploads.size;
  }

  /** Starts (or restarts) an upload with its first block; false when there is no room for it. */
  start(key: string, upload: UploadStart): boolean {
    this.#prune();
    if (this.#uploads.has(key)) this.#drop(key, true);
    if (upload.first.length > upload.reservedBytes) return false;
    const anonymousCap = Math.floor(this.#options.maxBytes / ANONYMOUS_SHARE);
    if (upload.anonymousEndpoint !== undefined) {
      if (this.#anonymousReserved + upload.reservedBytes > anonymousCap) return false;
    } else if (this.#reserved - this.#anonymousReserved + upload.reservedBytes > this.#options.maxBytes - anonymousCap) {
      return false;
    }
    if (this.#uploads.size >= this.#options.maxEntries) return false;
    const owned = upload.owner === undefined ? 0 : (this.#byOwner.get(upload.owner) ?? 0);
    if (owned >= (this.#options.maxPerOwner ?? DEFAULT_MAX_PER_OWNER)) return false;
    this.#uploads.set(key, {
      accessToken: upload.accessToken, learned: upload.learned ?? {}, chunks: [Buffer.from(upload.first)], bytes: upload.first.length,
      reservedBytes: upload.reservedBytes, maxBodyBytes: upload.maxBodyBytes, anonymousEndpoint: upload.anonymousEndpoint,
      owner: upload.owner,
      expiresAtMs: this.#options.nowMs() + this.#options.lifetimeMs,
    });
    this.#reserved += upload.reservedBytes;
    if (upload.owner !== undefined) this.#byOwner.set(upload.owner, owned + 1);
    if (upload.anonymousEndpoint !== undefined) {
      this.#anonymousReserved += upload.reservedBytes;
    }
    this.#add(upload.first.length);
    return true;
  }

  get(key: string): Readonly<Assembly> | undefined {
    this.#prune();
    return this.#uploads.get(key);
  }

  /** Appends the next block; false (and the upload dropped) when it passes the room set aside. */
  append(key: string, chunk: Buffer): boolean {
    const upload = this.#uploads.get(key);
    if (upload === undefined) return false;
    if (upload.bytes + chunk.length > upload.reservedBytes) {
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
    this.#byOwner.clear();
    this.#reserved = 0;
    this.#anonymousReserved = 0;
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
    this.#reserved -= upload.reservedBytes;
    if (upload.owner !== undefined) {
      const left = (this.#byOwner.get(upload.owner) ?? 1) - 1;
      if (left === 0) this.#byOwner.delete(upload.owner);
      else this.#byOwner.set(upload.owner, left);
    }
    if (upload.anonymousEndpoint !== undefined) {
      this.#anonymousReserved -= upload.reservedBytes;
    }
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

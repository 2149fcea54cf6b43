/** Percentiles of a latency distribution, in milliseconds. */
export interface LatencySummary {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

// Log-linear buckets 1 % wide from 1 µs: any percentile is within 1 % of the true value, and the
// memory is fixed however long the run (about 2,000 buckets up to 10 minutes).
const GROWTH = 1.01;
const LOG_GROWTH = Math.log(GROWTH);
const MIN_MS = 0.001;
const MAX_MS = 600_000;
const BUCKETS = Math.ceil(Math.log(MAX_MS / MIN_MS) / LOG_GROWTH) + 2;

/** A bounded latency histogram (HdrHistogram-like, 1 % precision); max and mean are exact. */
export class LatencyHistogram {
  readonly #counts = new Float64Array(BUCKETS);
  #count = 0;
  #sum = 0;
  #max = 0;

  record(ms: number): void {
    const value = Math.min(Math.max(ms, MIN_MS), MAX_MS);
    this.#counts[Math.floor(Math.log(value / MIN_MS) / LOG_GROWTH)]! += 1;
    this.#count += 1;
    this.#sum += ms;
    if (ms > this.#max) this.#max = ms;
  }

  get count(): number {
    return this.#count;
  }

  /** The value below which `fraction` (0..1) of the recorded values fall; 0 when empty. */
  percentile(fraction: number): number {
    if (this.#count === 0) return 0;
    const rank = Math.max(1, Math.ceil(fraction * this.#count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i += 1) {
      seen += this.#counts[i]!;
      // The bucket's upper edge, but never above the largest value actually seen.
      if (seen >= rank) return Math.min(MIN_MS * GROWTH ** (i + 1), this.#max);
    }
    return this.#max;
  }

  summary(): LatencySummary {
    return {
      p50: round3(this.percentile(0.5)),
      p90: round3(this.percentile(0.9)),
      p99: round3(this.percentile(0.99)),
      max: round3(this.#max),
      mean: round3(this.#count === 0 ? 0 : this.#sum / this.#count),
    };
  }
}

/** Counts by key (CoAP code, wire error), kept in first-seen order and reported sorted. */
export class Tally {
  readonly #counts = new Map<string, number>();

  add(key: string, n = 1): void {
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + n);
  }

  get total(): number {
    let sum = 0;
    for (const n of this.#counts.values()) sum += n;
    return sum;
  }

  toJSON(): Record<string, number> {
    return Object.fromEntries([...this.#counts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }
}

/** A FIFO of numbers without Array#shift's copying: the idle-device queue of the load loop. */
export class NumberQueue {
  #items: Int32Array;
  #head = 0;
  #size = 0;

  constructor(capacity: number) {
    this.#items = new Int32Array(Math.max(1, capacity));
  }

  get size(): number {
    return this.#size;
  }

  push(value: number): void {
    if (this.#size === this.#items.length) {
      const bigger = new Int32Array(this.#items.length * 2);
      for (let i = 0; i < this.#size; i += 1) bigger[i] = this.#items[(this.#head + i) % this.#items.length]!;
      this.#items = bigger;
      this.#head = 0;
    }
    this.#items[(this.#head + this.#size) % this.#items.length] = value;
    this.#size += 1;
  }

  /** The oldest value, or undefined when empty. */
  shift(): number | undefined {
    if (this.#size === 0) return undefined;
    const value = this.#items[this.#head]!;
    this.#head = (this.#head + 1) % this.#items.length;
    this.#size -= 1;
    return value;
  }
}

export function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}

/** A small seeded PRNG (mulberry32): the same seed gives the same run, so a failure can be replayed. */
export interface SeededRandom {
  readonly seed: number;
  /** [0, 1) */
  next(): number;
  /** An integer in [0, n). */
  int(n: number): number;
  pick<T>(items: readonly T[]): T;
  bytes(length: number): Buffer;
}

export function seededRandom(seed: number): SeededRandom {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return ((z ^ (z >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  return {
    seed,
    next,
    int,
    pick: (items) => items[int(items.length)]!,
    bytes: (length) => Buffer.from(Array.from({ length }, () => int(256))),
  };
}

/** The seed from the environment (to replay a run) or a fresh one. */
export function seedFrom(env: string | undefined): number {
  const parsed = env === undefined ? NaN : Number(env);
  return Number.isInteger(parsed) ? parsed >>> 0 : Math.floor(Math.random() * 2 ** 32);
}

import type { StoreChange } from '../ports.ts';

/**
 * Runs a read-modify-write of store files under the state-directory lock. What the task pushes to
 * `changes` is appended to the journal before the lock is released (even when a later step of the
 * task fails: what was written is announced), and this process's subscribers hear it before the
 * returned promise settles.
 */
export type Mutate = <T>(task: (changes: StoreChange[]) => Promise<T>) => Promise<T>;

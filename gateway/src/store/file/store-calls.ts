/**
 * Counts the file operations the ports make (`Store.calls`), one per read, write or append of a
 * store file. The change feed's own reads are not counted: they are the feed, not a port call.
 */
export interface StoreCalls {
  add(count?: number): void;
  total(): number;
}

export function createStoreCalls(): StoreCalls {
  let total = 0;
  return {
    add(count = 1) {
      total += count;
    },
    total: () => total,
  };
}

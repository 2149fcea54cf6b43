import { readFile, rename, writeFile } from 'node:fs/promises';
import { SimError } from './errors.ts';
import type { SequenceStore } from './oscore-context.ts';

/** The file's shape; a version so that a later one can be told apart. */
interface SequenceFileContent {
  version: 1;
  /** By context key (DeviceOscoreContext.key): the first Sender Sequence Number not yet reserved. */
  next: Record<string, number>;
}

/**
 * The simulated devices' Sender Sequence Numbers in one JSON file, as a device keeps its own in
 * flash (RFC 8613 Appendix B.1.1): a number is used only once the file says it may have been,
 * so a run that crashes skips numbers, never repeats one. Without it, a second `device-sim run`
 * against a gateway that remembers the contexts' replay windows would start again at 0, and
 * every request would be refused as a replay. Writes are whole-file (temporary file and rename)
 * and coalesced: every reservation made while one is written goes into the next.
 */
export async function openSequenceFile(path: string): Promise<SequenceStore & { close(): Promise<void> }> {
  let content: SequenceFileContent = { version: 1, next: {} };
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as Partial<SequenceFileContent>;
    const valid = parsed.version === 1 && parsed.next !== null && typeof parsed.next === 'object'
      && Object.values(parsed.next).every((n) => Number.isSafeInteger(n) && n >= 0);
    if (!valid) throw new SimError('SIM_ERR_DEVICES_FILE', `${path}: not an OSCORE sequence file ({"version": 1, "next": {key: number}})`);
    content = parsed as SequenceFileContent;
  } catch (err) {
    if (err instanceof SimError) throw err;
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new SimError('SIM_ERR_DEVICES_FILE', `cannot read OSCORE sequence file ${path}: ${(err as Error).message}`, { cause: err });
    }
  }
  let writing: Promise<void> | undefined;
  let queued: Promise<void> | undefined;
  const write = async () => {
    const temporary = `${path}.${process.pid}.tmp`;
    await writeFile(temporary, `${JSON.stringify(content)}\n`);
    await rename(temporary, path);
  };
  const schedule = (): Promise<void> => {
    // One write at a time; a reservation made while one runs waits for the next, which has it.
    if (writing === undefined) {
      writing = write().finally(() => { writing = undefined; });
      return writing;
    }
    queued ??= writing.then(() => { queued = undefined; return schedule(); });
    return queued;
  };
  return {
    start: (key) => content.next[key] ?? 0,
    reserve(key, upTo) {
      content.next[key] = upTo;
      return schedule();
    },
    async close() {
      await queued;
      await writing;
    },
  };
}

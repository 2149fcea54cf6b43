import { open, type FileHandle } from 'node:fs/promises';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { StoreChange } from '../ports.ts';
import { HEADER_BYTES, parseChange, parseHeader, type JournalPosition } from './change-journal.ts';

/** Read per event-loop turn: about 3,000 lines, a few milliseconds of parsing and listeners at most. */
export const TAIL_CHUNK_BYTES = 64 * 1024;

const NEWLINE = 0x0a;

export interface JournalTailer {
  /** Reads every line appended since the last read, telling `emit`; resolves when it is told. */
  catchUp(): Promise<void>;
  /** The same, not waited for (a file-system event). */
  poke(): void;
  /** Stops reading; resolves when a read under way has finished. */
  close(): Promise<void>;
}

/**
 * Follows the change journal from `start` (taken under the lock, so at the end of a line). Reads
 * are single-flight: events that arrive during a read queue one more read, never a pile of them,
 * and each read costs what was appended since the last, not what the journal holds.
 */
export function createJournalTailer(file: string, start: JournalPosition, emit: (change: StoreChange) => void): JournalTailer {
  let position: JournalPosition = { ...start };
  let chain: Promise<void> = Promise.resolve();
  let queued: Promise<void> | undefined;
  // A read that failed may have skipped lines: the next one starts with a resync.
  let lost = false;
  let closed = false;

  const restart = (generation: number, size: number): void => {
    emit({ kind: 'resync' });
    position = { generation, bytes: Math.min(HEADER_BYTES, size) };
    lost = false;
  };

  const readFrom = async (handle: FileHandle): Promise<void> => {
    const { size } = await handle.stat();
    const header = Buffer.alloc(HEADER_BYTES);
    const { bytesRead } = await handle.read(header, 0, HEADER_BYTES, 0);
    const generation = parseHeader(header.toString('utf8', 0, bytesRead)) ?? -1;
    if (lost || generation !== position.generation || size < position.bytes) restart(generation, size);
    let chunkBytes = TAIL_CHUNK_BYTES;
    while (!closed && position.bytes < size) {
      const left = size - position.bytes;
      const buffer = Buffer.allocUnsafe(Math.min(chunkBytes, left));
      const { bytesRead: read } = await handle.read(buffer, 0, buffer.length, position.bytes);
      const end = read === 0 ? -1 : buffer.lastIndexOf(NEWLINE, read - 1);
      if (end === -1) {
        // A line longer than a chunk: read more of it. Else a writer is mid-append: its event follows.
        if (read === buffer.length && read < left) {
          chunkBytes *= 2;
          continue;
        }
        return;
      }
      for (const line of buffer.toString('utf8', 0, end).split('\n')) {
        if (line !== '') emit(parseChange(line));
      }
      position = { generation, bytes: position.bytes + end + 1 };
      if (position.bytes < size) await nextTurn();
    }
  };

  const read = async (): Promise<void> => {
    queued = undefined;
    if (closed) return;
    let handle: FileHandle;
    try {
      handle = await open(file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        if (position.generation !== 0) restart(0, 0);
      } else {
        lost = true;
      }
      return;
    }
    try {
      await readFrom(handle);
    } catch {
      lost = true;
    } finally {
      await handle.close().catch(() => undefined);
    }
  };

  const schedule = (): Promise<void> => {
    if (queued !== undefined) return queued;
    const next = chain.then(read);
    queued = next;
    chain = next;
    return next;
  };

  return {
    catchUp: schedule,
    poke() {
      void schedule();
    },
    async close() {
      closed = true;
      await chain;
    },
  };
}

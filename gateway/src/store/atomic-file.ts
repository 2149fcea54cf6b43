import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import { open, readFile, rename, writeFile, unlink } from 'node:fs/promises';

/** Writes via a temporary file and rename, so readers (the watcher) never see half a file. */
export async function writeFileAtomic(file: string, data: string, mode = 0o600): Promise<void> {
  await (await prepareFileAtomic(file, data, mode)).commit();
}

/**
 * writeFileAtomic that survives a power cut: the data is on disk (fsync) before the rename, and the
 * rename before it resolves (fsync of the directory). For what must never go back once handed out
 * (the gateway's OSCORE sender sequence numbers: a reused one is a reused AES-CCM nonce).
 */
export async function writeFileDurable(file: string, data: string, mode = 0o600): Promise<void> {
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const handle = await open(tmp, 'wx', mode);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  const dir = await open(dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/** A file written beside its final name, not yet in place. */
export interface PreparedFile {
  /** Renames it over the final name (atomic: a reader sees the old file or the new, whole). */
  commit(): Promise<void>;
  /** Removes it, leaving the final name as it was. */
  discard(): Promise<void>;
}

/**
 * The first half of writeFileAtomic: lets a writer prepare many files, check everything, and only
 * then put them all in place (or none). Temporary names end in `.tmp`, which watchers ignore.
 */
export async function prepareFileAtomic(file: string, data: string, mode = 0o600): Promise<PreparedFile> {
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  const discard = () => unlink(tmp).catch(() => undefined);
  try {
    await writeFile(tmp, data, { mode });
  } catch (err) {
    await discard();
    throw err;
  }
  return {
    async commit() {
      try {
        await rename(tmp, file);
      } catch (err) {
        await discard();
        throw err;
      }
    },
    discard,
  };
}

/** Returns undefined when the file does not exist (yet, or any more). */
export async function readTextIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Returns undefined when the file does not exist yet. */
export async function readJsonIfExists(file: string): Promise<unknown> {
  const text = await readTextIfExists(file);
  return text === undefined ? undefined : JSON.parse(text);
}

/** Removes a file that may already be gone. */
export async function unlinkIfExists(file: string): Promise<void> {
  try {
    await unlink(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

import { appendFile, open } from 'node:fs/promises';
import { writeFileAtomic } from '../atomic-file.ts';
import { asRevocation, type StoreChange } from '../ports.ts';

/**
 * `<stateDir>/changes.log`: one line per change, appended under the state-directory lock after
 * the change is written, and tailed by every process that has the store open. It starts with a
 * fixed-width header naming its generation: a writer that finds it too long replaces it with an
 * empty next generation, and a reader that finds another generation than its own (or a file
 * shorter than its offset) knows it may have missed lines, and resyncs.
 */
export const JOURNAL_FILE = 'changes.log';

export interface JournalLimits {
  /** A journal longer than this is replaced by the next generation (readers resync once). */
  rotateBytes: number;
  /**
   * A single change larger than this (a bulk add of thousands of devices) is announced as a new
   * generation, i.e. one resync, instead of a line per device that every reader would parse.
   */
  largestChangeBytes: number;
}

export const DEFAULT_JOURNAL_LIMITS: JournalLimits = { rotateBytes: 1024 * 1024, largestChangeBytes: 256 * 1024 };

const HEADER_PREFIX = 'changes v1 generation ';
const GENERATION_DIGITS = 12;
/** Bytes of the header line, which every generation has the same of. */
export const HEADER_BYTES = HEADER_PREFIX.length + GENERATION_DIGITS + 1;

export const formatHeader = (generation: number): string =>
  `${HEADER_PREFIX}${String(generation).padStart(GENERATION_DIGITS, '0')}\n`;

/** The generation in a header, or undefined for anything else (a damaged or foreign file). */
export function parseHeader(header: string): number | undefined {
  if (header.length !== HEADER_BYTES || !header.startsWith(HEADER_PREFIX) || !header.endsWith('\n')) return undefined;
  const generation = Number(header.slice(HEADER_PREFIX.length, -1));
  return Number.isSafeInteger(generation) ? generation : undefined;
}

// Ids and kids are written bare when they are plain printable words (device ids always are), and as
// JSON strings otherwise, so that no value can break a line or start with a quote.
const BARE = /^[!#-~]+$/;
const encodeArgument = (value: string): string => (BARE.test(value) ? value : JSON.stringify(value));
const decodeArgument = (text: string): string => (text.startsWith('"') ? (JSON.parse(text) as string) : text);

/** `device <id>`, `key <kid>`, `revocation <json>`, `resync`: a line without its newline. */
export function formatChange(change: StoreChange): string {
  switch (change.kind) {
    case 'device': return `device ${encodeArgument(change.id)}`;
    case 'key': return `key ${encodeArgument(change.kid)}`;
    case 'revocation': return `revocation ${JSON.stringify(change.revocation)}`;
    case 'resync': return 'resync';
  }
}

/** A line the reader does not understand (a newer writer, a damaged file) means resync: nothing is silently missed. */
export function parseChange(line: string): StoreChange {
  const space = line.indexOf(' ');
  const kind = space === -1 ? line : line.slice(0, space);
  const argument = space === -1 ? '' : line.slice(space + 1);
  try {
    if (kind === 'device' && argument !== '') return { kind, id: decodeArgument(argument) };
    if (kind === 'key' && argument !== '') return { kind, kid: decodeArgument(argument) };
    if (kind === 'revocation') {
      const revocation = asRevocation(JSON.parse(argument));
      if (revocation !== undefined) return { kind, revocation };
    }
  } catch {
    return { kind: 'resync' };
  }
  return { kind: 'resync' };
}

/** Where a journal stands: its generation and length in bytes (0 and 0 when there is none). */
export interface JournalPosition {
  generation: number;
  bytes: number;
}

export async function readJournalPosition(file: string): Promise<JournalPosition> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { generation: 0, bytes: 0 };
    throw err;
  }
  try {
    const { size } = await handle.stat();
    const header = Buffer.alloc(HEADER_BYTES);
    const { bytesRead } = await handle.read(header, 0, HEADER_BYTES, 0);
    return { generation: parseHeader(header.toString('utf8', 0, bytesRead)) ?? -1, bytes: size };
  } finally {
    await handle.close();
  }
}

/**
 * Appends `changes` to the journal. Call with the state-directory lock held: the lock orders the
 * appends of all processes, and no reader ever sees two writers' lines interleaved.
 */
export async function appendChanges(file: string, changes: readonly StoreChange[], limits: JournalLimits = DEFAULT_JOURNAL_LIMITS): Promise<void> {
  if (changes.length === 0) return;
  const text = changes.map((change) => `${formatChange(change)}\n`).join('');
  const bytes = Buffer.byteLength(text);
  const position = await readJournalPosition(file);
  if (position.generation <= 0 || position.bytes + bytes > limits.rotateBytes || bytes > limits.largestChangeBytes) {
    // The new generation keeps a change that fits, so a reader resyncs and hears it too (twice is harmless).
    const next = Math.max(position.generation, 0) + 1;
    await writeFileAtomic(file, formatHeader(next) + (bytes > limits.largestChangeBytes ? '' : text), 0o600);
    return;
  }
  await appendFile(file, text, { mode: 0o600 });
}

/** Starts a journal in a directory that has none (under the lock), so readers have a generation to hold. */
export async function ensureJournal(file: string): Promise<void> {
  const position = await readJournalPosition(file);
  if (position.generation <= 0) await writeFileAtomic(file, formatHeader(Math.max(position.generation, 0) + 1), 0o600);
}

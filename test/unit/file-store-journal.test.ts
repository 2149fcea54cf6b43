import { appendFile, readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import {
  appendChanges, ensureJournal, formatChange, formatHeader, HEADER_BYTES, JOURNAL_FILE, parseChange, readJournalPosition,
} from '../../gateway/src/store/file/change-journal.ts';
import { MOST_DEVICE_LINES } from '../../gateway/src/store/file/device-registry.ts';
import { createJournalTailer } from '../../gateway/src/store/file/journal-tailer.ts';
import type { FamilyRevocation, PublishedKey, Store, StoreChange } from '../../gateway/src/store/ports.ts';
import { deviceRecord, openFileStore, tempDir } from '../helpers/store-fixtures.ts';

/** Resolves with the changes `store` hears, up to and including the first that `last` accepts. */
function heardUntil(store: Store, last: (change: StoreChange) => boolean): Promise<StoreChange[]> {
  const heard: StoreChange[] = [];
  return new Promise((resolve) => {
    const off = store.subscribe((change) => {
      heard.push(change);
      if (last(change)) {
        off();
        resolve(heard);
      }
    });
  });
}

t.test('lines: every change round-trips, odd ids as JSON strings, unknown lines mean resync', async (t) => {
  const revocation: FamilyRevocation = { family: 'f1', deviceId: 'd1', atSec: 10, untilSec: 20 };
  const changes: StoreChange[] = [
    { kind: 'device', id: 'sim-0001' }, { kind: 'device', id: 'a b\nc' }, { kind: 'device', id: '"quoted' },
    { kind: 'key', kid: '0af3' }, { kind: 'revocation', revocation }, { kind: 'resync' },
  ];
  for (const change of changes) {
    const line = formatChange(change);
    t.notOk(line.includes('\n'), `one line: ${line}`);
    t.same(parseChange(line), change);
  }
  t.equal(formatChange({ kind: 'device', id: 'sim-0001' }), 'device sim-0001', 'plain ids stay readable');
  t.same(parseChange('frobnicate x'), { kind: 'resync' });
  t.same(parseChange('revocation {broken'), { kind: 'resync' });
  t.same(parseChange('revocation 5'), { kind: 'resync' }, 'not a revocation');
  t.same(parseChange('device '), { kind: 'resync' });
  t.equal(formatHeader(7).length, HEADER_BYTES);
});

t.test('another store on the same directory hears a device added, removed, a key and a revocation', async (t) => {
  const dir = await tempDir(t);
  const cli = await openFileStore(t, dir);
  const gateway = await openFileStore(t, dir);
  const heard = heardUntil(gateway, (change) => change.kind === 'revocation');
  await cli.devices.add([deviceRecord('d1')]);
  await cli.devices.remove('d1');
  const key: PublishedKey = { kid: 'k1', alg: 'ES256', state: 'verifying', gateway: 'g1', createdAt: '2026-01-01T00:00:00Z', publicJwk: { kty: 'EC' } };
  await cli.keys.publish(key);
  const revocation = { family: 'fam', deviceId: 'd1', atSec: 1, untilSec: 4_000_000_000 };
  await cli.revocations.revokeFamily(revocation);
  t.same(await heard, [
    { kind: 'device', id: 'd1' }, { kind: 'device', id: 'd1' }, { kind: 'key', kid: 'k1' }, { kind: 'revocation', revocation },
  ], 'in order, each once');
  t.same(await gateway.keys.list(), [key], 'visible to the ports when heard');
});

t.test('this process\'s own change reaches its listeners before the call resolves, once', async (t) => {
  const store = await openFileStore(t, await tempDir(t));
  const heard: StoreChange[] = [];
  const off = store.subscribe((change) => heard.push(change));
  await store.devices.add([deviceRecord('a'), deviceRecord('b')]);
  t.same(heard, [{ kind: 'device', id: 'a' }, { kind: 'device', id: 'b' }]);
  await t.rejects(store.devices.add([deviceRecord('a')]), { code: 'GW_ERR_ADMIN_DUPLICATE_DEVICE' });
  t.equal(await store.devices.remove('zzz'), false);
  t.equal(heard.length, 2, 'a refused or empty change tells nobody');
  off();
  await store.devices.remove('a');
  t.equal(heard.length, 2, 'unsubscribed');
});

t.test('a bulk add is one resync for readers, not a line per device', async (t) => {
  const dir = await tempDir(t);
  const cli = await openFileStore(t, dir);
  const gateway = await openFileStore(t, dir);
  const heard = heardUntil(gateway, (change) => change.kind === 'resync');
  await cli.devices.add(Array.from({ length: MOST_DEVICE_LINES + 1 }, (_, i) => deviceRecord(`bulk-${i}`)));
  t.same(await heard, [{ kind: 'resync' }]);
  t.ok((await readFile(join(dir, JOURNAL_FILE), 'utf8')).length < 200, 'the journal holds one line for it');
});

t.test('a full journal becomes a new generation: a reader resyncs, then hears what follows', async (t) => {
  const dir = await tempDir(t);
  // A journal past 1 MiB before anyone opens the directory.
  await writeFile(join(dir, JOURNAL_FILE), formatHeader(1) + 'device filler\n'.repeat(80_000), { mode: 0o600 });
  const cli = await openFileStore(t, dir);
  const gateway = await openFileStore(t, dir);
  const heard = heardUntil(gateway, (change) => change.kind === 'device' && change.id === 'after');
  await cli.devices.add([deviceRecord('after')]);
  t.same(await heard, [{ kind: 'resync' }, { kind: 'device', id: 'after' }]);
  const position = await readJournalPosition(join(dir, JOURNAL_FILE));
  t.equal(position.generation, 2);
  t.ok(position.bytes < 100, 'the old lines are gone');
});

t.test('the tailer: rotation and truncation mean resync; a half-written line waits for its end', async (t) => {
  const file = join(await tempDir(t), JOURNAL_FILE);
  const limits = { rotateBytes: 120, largestChangeBytes: 60 };
  await ensureJournal(file);
  const heard: StoreChange[] = [];
  const tailer = createJournalTailer(file, await readJournalPosition(file), (change) => heard.push(change));
  t.teardown(() => tailer.close());

  await appendChanges(file, [{ kind: 'device', id: 'a' }], limits);
  await appendFile(file, 'device b');
  await tailer.catchUp();
  t.same(heard.splice(0), [{ kind: 'device', id: 'a' }], 'the unfinished line is not read');
  await appendFile(file, '\n');
  await tailer.catchUp();
  t.same(heard.splice(0), [{ kind: 'device', id: 'b' }]);

  await appendChanges(file, Array.from({ length: 8 }, (_, i) => ({ kind: 'device', id: `x${i}` })), limits);
  await tailer.catchUp();
  t.same(heard.splice(0), [{ kind: 'resync' }], 'a change larger than largestChangeBytes: a new generation, empty');
  t.equal((await readJournalPosition(file)).generation, 2);

  for (let i = 0; i < 10; i += 1) await appendChanges(file, [{ kind: 'device', id: `y${i}` }], limits);
  await tailer.catchUp();
  t.same(heard.filter((change) => change.kind === 'resync').length, 1, 'passing rotateBytes: one more generation');
  t.same(heard.at(-1), { kind: 'device', id: 'y9' }, 'and the lines after it');
  heard.length = 0;

  await truncate(file, HEADER_BYTES);
  await appendChanges(file, [{ kind: 'device', id: 'z' }], limits);
  await tailer.catchUp();
  t.same(heard, [{ kind: 'resync' }, { kind: 'device', id: 'z' }], 'a journal shorter than the offset: resync, from its start');
});

t.test('a reader far behind is told in chunks, without blocking the loop for the whole backlog', async (t) => {
  const file = join(await tempDir(t), JOURNAL_FILE);
  await ensureJournal(file);
  let count = 0;
  let turns = 0;
  const tailer = createJournalTailer(file, await readJournalPosition(file), () => { count += 1; });
  t.teardown(() => tailer.close());
  await appendFile(file, 'device some-device-id\n'.repeat(20_000));
  const ticking = setInterval(() => { turns += 1; }, 0);
  await tailer.catchUp();
  clearInterval(ticking);
  t.equal(count, 20_000);
  t.ok(turns > 0, 'timers ran while the backlog was read');
});

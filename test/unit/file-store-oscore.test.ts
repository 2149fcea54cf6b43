import { randomBytes } from 'node:crypto';
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { DEFAULT_BUCKET_COUNT, bucketOf } from '../../gateway/src/store/file/device-buckets.ts';
import { SEQUENCES_DIR } from '../../gateway/src/store/file/oscore-windows-file.ts';
import { readMeta, writeMeta } from '../../gateway/src/store/file/registry-meta.ts';
import { SENDERS_DIR, senderBucketFile, senderBucketOf } from '../../gateway/src/store/file/sender-index.ts';
import { MAX_SEQUENCE_NUMBER, RETIRED_SEQUENCE_KEEP_MS } from '../../gateway/src/store/replay-window.ts';
import { SENDER_ID_COUNTERS } from '../../gateway/src/store/sender-ids.ts';
import { oscoreContext } from '../contract/oscore-contract.ts';
import { deviceRecord, openFileStore, tempDir } from '../helpers/store-fixtures.ts';

// What the file store does with OSCORE state on disk and in memory, beyond the contract both
// backends share (test/contract/oscore-contract.ts): file modes, crash leftovers and recovery,
// the bound on windows, and the on-disk sequence counters.

const modeOf = async (path: string) => (await stat(path)).mode & 0o777;

t.test('the files holding a context are owner-only: the device bucket (the master secret), the index, the sequences', async (t) => {
  const dir = await tempDir(t);
  const store = await openFileStore(t, dir);
  const [sender] = await store.devices.allocateSenderIds(1) as [string];
  const record = deviceRecord('secretive', { oscore: oscoreContext(sender) });
  await store.devices.add([record]);
  await store.oscoreWindows.reserveSequence(record.oscore!.generation, 10);
  const bucket = join(dir, 'devices', `${bucketOf('secretive', DEFAULT_BUCKET_COUNT).toString(16).padStart(3, '0')}.json`);
  t.match(await readFile(bucket, 'utf8'), record.oscore!.masterSecret, 'the bucket holds the master secret');
  t.equal(await modeOf(bucket), 0o600, 'device bucket 0600');
  t.equal(await modeOf(senderBucketFile(join(dir, SENDERS_DIR), senderBucketOf(sender, DEFAULT_BUCKET_COUNT))), 0o600, 'index bucket 0600');
  const [sequences] = await readdir(join(dir, SEQUENCES_DIR));
  t.equal(await modeOf(join(dir, SEQUENCES_DIR, sequences!)), 0o600, 'sequence bucket 0600');
  for (const sub of ['', 'devices', SENDERS_DIR, SEQUENCES_DIR]) t.equal(await modeOf(join(dir, sub)), 0o700, `${sub || 'the state directory'} 0700`);
});

t.test('an index entry a crash left behind names no device, and is taken over', async (t) => {
  const dir = await tempDir(t);
  const store = await openFileStore(t, dir);
  await store.devices.add([deviceRecord('plain')]);
  // As a writer that died after the index and before the record would leave it.
  const file = senderBucketFile(join(dir, SENDERS_DIR), senderBucketOf('2a', DEFAULT_BUCKET_COUNT));
  await writeFile(file, JSON.stringify({ '2a': 'plain' }), { mode: 0o600 });
  t.equal(await store.devices.idOfSender('2a'), undefined, 'the record does not hold it: no device');
  await store.devices.add([deviceRecord('new', { oscore: oscoreContext('2a') })]);
  t.equal(await store.devices.idOfSender('2a'), 'new', 'a device may take it');
});

t.test('recovery rebuilds the index from the records and keeps the counter past every id held', async (t) => {
  const dir = await tempDir(t);
  const first = await openFileStore(t, dir);
  const ids = await first.devices.allocateSenderIds(300);
  await first.devices.add([deviceRecord('a', { oscore: oscoreContext(ids[5]!) }), deviceRecord('b', { oscore: oscoreContext(ids[299]!) })]);
  await first.close();
  // The index lost, and the meta file with its counter (a restore of part of a backup, say).
  await rm(join(dir, SENDERS_DIR), { recursive: true });
  await rm(join(dir, 'devices', 'meta.json'));
  const reopened = await openFileStore(t, dir);
  t.equal(await reopened.devices.idOfSender(ids[5]!), 'a', 'the index is rebuilt');
  t.equal(await reopened.devices.idOfSender(ids[299]!), 'b');
  t.equal(await reopened.devices.count(), 2, 'and the count');
  t.same(await reopened.devices.allocateSenderIds(1), ['002c'], 'the counter resumes past the highest id a record holds (counter 300)');

  const meta = (await readMeta(join(dir, 'devices')))!;
  await writeMeta(join(dir, 'devices'), { ...meta, nextSenderId: SENDER_ID_COUNTERS - 1 });
  t.same((await reopened.devices.allocateSenderIds(1)).map((id) => id.length), [6], 'the last id is three bytes');
  await t.rejects(reopened.devices.allocateSenderIds(1), { name: 'AdminError', code: 'GW_ERR_ADMIN_STATE' }, 'past the last: spent, never wrapped');
});

t.test('replay windows are bounded memory: the least recently used is evicted, counted, and unknown after; a restart loses them all', async (t) => {
  const dir = await tempDir(t);
  let evicted = 0;
  const store = await openFileStore(t, dir, { maxOscoreWindows: 2, onOscoreWindowEvicted: () => { evicted += 1; } });
  await store.oscoreWindows.establish('w1');
  await store.oscoreWindows.establish('w2');
  t.equal(await store.oscoreWindows.accept('w1', 0), 'fresh', 'w1 used: w2 is now the least recently used');
  await store.oscoreWindows.establish('w3');
  t.equal(evicted, 1, 'one eviction counted');
  t.equal(await store.oscoreWindows.accept('w2', 0), 'unknown', 'the evicted window is unknown (its next request recovers with Echo)');
  t.equal(await store.oscoreWindows.accept('w1', 0), 'replay', 'the one in use is kept');
  const restarted = await openFileStore(t, dir);
  t.equal(await restarted.oscoreWindows.accept('w1', 1), 'unknown', 'a new process holds no window');
});

t.test('sequence blocks: on disk before they are handed out, spent at 2^40, retired entries pruned a day after', async (t) => {
  const dir = await tempDir(t);
  let nowMs = Date.parse('2026-03-01T00:00:00Z');
  const store = await openFileStore(t, dir, { nowMs: () => nowMs });
  t.equal(await store.oscoreWindows.reserveSequence('gen-a', 100), 0);
  const file = join(dir, SEQUENCES_DIR, `${bucketOf('gen-a', DEFAULT_BUCKET_COUNT).toString(16).padStart(3, '0')}.json`);
  t.same(JSON.parse(await readFile(file, 'utf8')), { 'gen-a': { next: 100 } }, 'the next free number is on disk when the block is handed out');

  await writeFile(file, JSON.stringify({ 'gen-a': { next: MAX_SEQUENCE_NUMBER + 1 - 5 } }));
  t.equal(await store.oscoreWindows.reserveSequence('gen-a', 5), MAX_SEQUENCE_NUMBER + 1 - 5, 'the last block');
  await t.rejects(store.oscoreWindows.reserveSequence('gen-a', 1), RangeError, 'then the context is spent');

  // Another generation in the same bucket, to write it after the retired one's time is up.
  let neighbour = '';
  while (neighbour === '' || bucketOf(neighbour, DEFAULT_BUCKET_COUNT) !== bucketOf('gen-a', DEFAULT_BUCKET_COUNT)) neighbour = randomBytes(9).toString('base64url');
  await store.oscoreWindows.forget('gen-a');
  t.match(JSON.parse(await readFile(file, 'utf8')), { 'gen-a': { retiredAtMs: nowMs } }, 'forgetting retires the entry, and keeps it');
  nowMs += RETIRED_SEQUENCE_KEEP_MS - 1000;
  await store.oscoreWindows.reserveSequence(neighbour, 1);
  t.ok('gen-a' in JSON.parse(await readFile(file, 'utf8')), 'kept within the day');
  nowMs += 2000;
  await store.oscoreWindows.reserveSequence(neighbour, 1);
  t.notOk('gen-a' in JSON.parse(await readFile(file, 'utf8')), 'pruned after');
});

t.test('removing a device retires its context\'s sequence numbers on disk', async (t) => {
  const dir = await tempDir(t);
  const store = await openFileStore(t, dir);
  const record = deviceRecord('gone', { oscore: oscoreContext('07') });
  await store.devices.add([record]);
  const generation = record.oscore!.generation;
  await store.oscoreWindows.reserveSequence(generation, 3);
  await store.devices.remove('gone');
  const file = join(dir, SEQUENCES_DIR, `${bucketOf(generation, DEFAULT_BUCKET_COUNT).toString(16).padStart(3, '0')}.json`);
  t.match(JSON.parse(await readFile(file, 'utf8')), { [generation]: { next: 3, retiredAtMs: Number } });
  t.equal(await store.oscoreWindows.reserveSequence(generation, 1), 3, 'a gateway still holding it never starts over');
});

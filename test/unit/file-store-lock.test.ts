import { spawn } from 'node:child_process';
import { readFile, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { createStateLock, LOCK_FILE } from '../../gateway/src/store/file/state-lock.ts';
import { StoreUnavailableError, type Store } from '../../gateway/src/store/ports.ts';
import { deviceRecord, openFileStore, tempDir } from '../helpers/store-fixtures.ts';

/** The pid of a process that has exited (and been reaped). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}

const exists = (file: string) => stat(file).then(() => true, () => false);

t.test('two stores adding and removing at once on one directory lose nothing', async (t) => {
  const dir = await tempDir(t);
  const [a, b] = [await openFileStore(t, dir), await openFileStore(t, dir)];
  const writes = (store: Store, prefix: string) => async () => {
    for (let i = 0; i < 20; i += 1) await store.devices.add([deviceRecord(`${prefix}-${i}`)]);
    await store.devices.add(Array.from({ length: 100 }, (_, i) => deviceRecord(`${prefix}-bulk-${i}`)));
    for (let i = 0; i < 5; i += 1) t.equal(await store.devices.remove(`${prefix}-${i}`), true);
  };
  await Promise.all([writes(a, 'a')(), writes(b, 'b')(), writes(a, 'a2')()]);
  const expected = 3 * (20 + 100 - 5);
  t.equal(await b.devices.count(), expected, 'the count kept under the lock is exact');
  const ids = new Set<string>();
  for await (const batch of a.devices.list()) for (const device of batch) ids.add(device.id);
  t.equal(ids.size, expected, 'every device that should be there is');
  t.notOk(ids.has('b-3'), 'and removed ones are not');
  t.ok(ids.has('a2-bulk-99'));
  t.notOk(await exists(join(dir, LOCK_FILE)), 'the lock is released');
});

t.test('a lock left by a dead process on this host is taken over at once', async (t) => {
  const dir = await tempDir(t);
  const store = await openFileStore(t, dir);
  await writeFile(join(dir, LOCK_FILE), JSON.stringify({ pid: await deadPid(), host: hostname(), token: 'gone' }));
  await store.devices.add([deviceRecord('after-crash')]);
  t.ok(await store.devices.get('after-crash'));
  t.notOk(await exists(join(dir, LOCK_FILE)));
});

t.test('a lock from another host is taken over once its heartbeat is stale', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, LOCK_FILE);
  const lock = createStateLock(file, { staleMs: 5_000 });
  await writeFile(file, JSON.stringify({ pid: 1, host: 'elsewhere', token: 'x' }));
  const minuteAgo = new Date(Date.now() - 60_000);
  await utimes(file, minuteAgo, minuteAgo);
  t.equal(await lock.run(async () => 'ran'), 'ran');
});

t.test('a live holder is waited for, and past the timeout the store is unavailable', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, LOCK_FILE);
  // Another store in this very process: the pid is alive, the token is not ours.
  await writeFile(file, JSON.stringify({ pid: process.pid, host: hostname(), token: 'someone-else' }));
  await t.rejects(createStateLock(file, { timeoutMs: 30 }).run(async () => 'never'), StoreUnavailableError);
  const lock = createStateLock(file);
  let ran = false;
  const waiting = lock.run(async () => { ran = true; });
  t.equal(ran, false);
  await unlink(file);
  await waiting;
  t.equal(ran, true, 'runs once the holder lets go');
});

t.test('release removes only its own lock: one taken over meanwhile stays its new holder\'s', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, LOCK_FILE);
  const lock = createStateLock(file);
  const theirs = JSON.stringify({ pid: process.pid, host: hostname(), token: 'taker' });
  await lock.run(async () => {
    await writeFile(file, theirs);
  });
  t.equal(await readFile(file, 'utf8'), theirs);
});

t.test('tasks of one process run one after the other, and a failed one does not stop the next', async (t) => {
  const lock = createStateLock(join(await tempDir(t), LOCK_FILE));
  const order: string[] = [];
  const first = lock.run(async () => {
    order.push('first start');
    await new Promise((resolve) => setImmediate(resolve));
    order.push('first end');
    throw new Error('first failed');
  });
  const second = lock.run(async () => { order.push('second'); });
  await t.rejects(first, /first failed/);
  await second;
  await lock.idle();
  t.same(order, ['first start', 'first end', 'second']);
});

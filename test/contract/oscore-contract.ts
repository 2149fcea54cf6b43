import { randomBytes } from 'node:crypto';
import type { Test } from 'tap';
import type { DeviceOscore, DeviceRecord, Store, StoreChange } from '../../gateway/src/store/ports.ts';
import { MAX_SEQUENCE_NUMBER } from '../../gateway/src/store/replay-window.ts';
import { seededRandom } from '../helpers/seeded-random.ts';
import { deviceRecord } from '../helpers/store-fixtures.ts';

// The OSCORE half of the store contract (store-contract.ts runs it on every backend): Sender IDs,
// the index by Sender ID, replay windows and the gateway's sender sequence numbers.

export interface OscoreFactoryFlags {
  name: string;
  /**
   * Whether a replay window is shared by two instances: true for Redis (a datagram accepted by one
   * gateway is a replay on every other); false for the file store, whose windows are its one
   * gateway's memory (a second instance recovers with Echo).
   */
  sharedWindows: boolean;
}

export interface OpenedForCase {
  store: Store;
  openPeer(): Promise<Store>;
  close(store: Store): Promise<void>;
}

const adminError = (code: string) => ({ name: 'AdminError', code });

/** A context as provisioning makes one; the generation is random, as it is there. */
export const oscoreContext = (senderId: string, extra: Partial<DeviceOscore> = {}): DeviceOscore => ({
  senderId,
  recipientId: '',
  masterSecret: randomBytes(16).toString('base64url'),
  masterSalt: randomBytes(8).toString('base64url'),
  generation: randomBytes(12).toString('base64url'),
  createdAt: '2026-01-01T00:00:00.000Z',
  ...extra,
});

const withContext = (id: string, senderId: string, extra: Partial<DeviceRecord> = {}): DeviceRecord =>
  deviceRecord(id, { oscore: oscoreContext(senderId), ...extra });

/** The section 7.4 window as plainly as it can be said: a set of what was accepted. */
function modelWindow() {
  const seen = new Set<number>();
  let highest = -1;
  return {
    accept(seq: number): 'fresh' | 'replay' {
      if (seen.has(seq) || (seq < highest && highest - seq > 32)) return 'replay';
      seen.add(seq);
      highest = Math.max(highest, seq);
      return 'fresh';
    },
  };
}

export function oscoreContract(t: Test, flags: OscoreFactoryFlags, open: (t: Test) => Promise<OpenedForCase>): void {
  const { name } = flags;

  t.test(`${name}: Sender IDs are handed out once, 1 byte first, never again after a removal`, async (t) => {
    const { store, openPeer } = await open(t);
    const peer = await openPeer();
    t.same(await store.devices.allocateSenderIds(3), ['00', '01', '02'], 'a fresh store starts at 00, one byte');
    t.same(await peer.devices.allocateSenderIds(1), ['03'], 'another instance goes on from there');
    const together = await Promise.all([
      ...Array.from({ length: 5 }, () => store.devices.allocateSenderIds(20)),
      ...Array.from({ length: 5 }, () => peer.devices.allocateSenderIds(20)),
    ]);
    const all = together.flat();
    t.equal(new Set(all).size, 200, 'allocations from two instances at once never overlap');
    t.notOk(all.some((id) => ['00', '01', '02', '03'].includes(id)), 'nor repeat an earlier one');
    const upTo = await store.devices.allocateSenderIds(52);
    t.equal(upTo.at(-1), 'ff', 'the 256th id is the last of one byte');
    t.same(await peer.devices.allocateSenderIds(1), ['0000'], 'then they are two bytes, from 0000');

    await store.devices.add([withContext('holder', '00')]);
    t.equal(await store.devices.remove('holder'), true);
    const after = await store.devices.allocateSenderIds(1);
    t.same(after, ['0001'], 'a removed device\'s id stays spent: the counter only goes on');
    await t.rejects(store.devices.allocateSenderIds(0), TypeError, 'a count of 0 is a caller\'s mistake');
  });

  t.test(`${name}: the index by Sender ID follows add, rotation, a new id, a dropped context and removal`, async (t) => {
    const { store, openPeer } = await open(t);
    const peer = await openPeer();
    const [a, b] = await store.devices.allocateSenderIds(2) as [string, string];
    await store.devices.add([withContext('dev-a', a), deviceRecord('plain')]);
    t.equal(await store.devices.idOfSender(a), 'dev-a', 'found by its Sender ID');
    t.equal(await peer.devices.idOfSender(a), 'dev-a', 'from another instance too');
    t.equal(await store.devices.idOfSender(b), undefined, 'an id no device holds');
    for (const bad of ['', 'AB', 'abc', '0011223344556677', 'zz']) t.equal(await store.devices.idOfSender(bad), undefined, `not a Sender ID: ${JSON.stringify(bad)}`);

    await t.rejects(store.devices.add([withContext('dev-b', a)]), adminError('GW_ERR_ADMIN_CONFLICT'), 'a Sender ID another device holds is refused');
    t.equal(await store.devices.get('dev-b'), undefined, 'and the device is not added');
    await t.rejects(store.devices.add([withContext('dev-c', b), withContext('dev-d', b)]), adminError('GW_ERR_ADMIN_CONFLICT'), 'so is one given twice in a batch');
    t.equal(await store.devices.get('dev-c'), undefined, 'all or none');
    t.equal(await store.devices.idOfSender(b), undefined, 'and the index is untouched');

    const read = (await store.devices.get('dev-a'))!;
    const rotated = { ...read, oscore: oscoreContext(a) };
    t.equal(await peer.devices.replace(read, rotated), true, 'rotated (a new secret and generation, the same Sender ID)');
    t.equal(await store.devices.idOfSender(a), 'dev-a', 'a rotated context keeps its device\'s Sender ID');
    t.strictSame(await store.devices.get('dev-a'), rotated, 'the whole context round-trips');

    const moved = { ...rotated, oscore: { ...rotated.oscore, senderId: b } };
    t.equal(await store.devices.replace(rotated, moved), true);
    t.equal(await store.devices.idOfSender(b), 'dev-a', 'a new Sender ID is indexed');
    t.equal(await peer.devices.idOfSender(a), undefined, 'the old one no more');

    const plain = (await store.devices.get('plain'))!;
    await t.rejects(store.devices.replace(plain, { ...plain, oscore: oscoreContext(b) }), adminError('GW_ERR_ADMIN_CONFLICT'),
      'a replacement taking another device\'s Sender ID is refused');
    t.strictSame(await store.devices.get('plain'), plain, 'and changes nothing');

    const { oscore: _dropped, ...without } = moved;
    t.equal(await store.devices.replace(moved, without), true, 'the context dropped (as revoke does)');
    t.equal(await store.devices.idOfSender(b), undefined, 'its Sender ID is no device\'s now');

    const again = { ...without, oscore: oscoreContext(b) };
    t.equal(await store.devices.replace(without, again), true, 'a context again');
    t.equal(await peer.devices.idOfSender(b), 'dev-a');
    t.equal(await store.devices.remove('dev-a'), true);
    t.equal(await store.devices.idOfSender(b), undefined, 'a removed device\'s Sender ID is no device\'s');
    t.equal(await peer.devices.idOfSender(b), undefined);
    await store.devices.add([withContext('dev-e', b)]);
    t.equal(await peer.devices.idOfSender(b), 'dev-e', 'and may be given to a device again only explicitly (the allocator never does)');
  });

  t.test(`${name}: a replay window: fresh once, replays refused, below the window refused, unknown when never established`, async (t) => {
    const { store } = await open(t);
    const windows = store.oscoreWindows;
    t.equal(await windows.accept('never-made', 0), 'unknown', 'no window for a generation never established');
    await windows.establish('g1');
    const steps: [number, string][] = [
      [0, 'fresh'], [0, 'replay'], [5, 'fresh'], [3, 'fresh'], [3, 'replay'], [5, 'replay'], [4, 'fresh'],
      [40, 'fresh'], [7, 'replay'], [8, 'fresh'], [8, 'replay'], [9, 'fresh'], [41, 'fresh'], [9, 'replay'],
      [73, 'fresh'], [41, 'replay'], [72, 'fresh'], [40, 'replay'], [106, 'fresh'], [73, 'replay'], [74, 'fresh'],
      [MAX_SEQUENCE_NUMBER, 'fresh'], [MAX_SEQUENCE_NUMBER, 'replay'], [MAX_SEQUENCE_NUMBER - 32, 'fresh'], [MAX_SEQUENCE_NUMBER - 33, 'replay'],
    ];
    const got: string[] = [];
    for (const [seq, _] of steps) got.push(`${seq}: ${await windows.accept('g1', seq)}`);
    t.same(got, steps.map(([seq, verdict]) => `${seq}: ${verdict}`), 'each step as section 7.4 says (window 32)');
    t.equal(await windows.accept('g2', 0), 'unknown', 'another generation has its own window');

    await windows.establish('g3', 100);
    t.same([await windows.accept('g3', 100), await windows.accept('g3', 99), await windows.accept('g3', 68), await windows.accept('g3', 101)],
      ['replay', 'replay', 'replay', 'fresh'], 'established at a number received: it and everything below count as seen');
    await windows.establish('g1');
    t.equal(await windows.accept('g1', 0), 'fresh', 'establishing again starts the window over');
    await windows.forget('g1');
    t.equal(await windows.accept('g1', 1), 'unknown', 'a forgotten window is unknown');
    await t.rejects(windows.accept('g3', -1), RangeError);
    await t.rejects(windows.accept('g3', MAX_SEQUENCE_NUMBER + 1), RangeError, 'past a 5-byte Partial IV');
    await t.rejects(windows.accept('g3', 1.5), RangeError);
  });

  t.test(`${name}: a replay window agrees with the plain model of section 7.4 over a random run`, async (t) => {
    const { store } = await open(t);
    const random = seededRandom(0x05c0 + name.length);
    const model = modelWindow();
    await store.oscoreWindows.establish('random');
    let base = 0;
    const disagreements: string[] = [];
    for (let i = 0; i < 400; i += 1) {
      // Mostly near the top (reordering within the window), sometimes far below or far ahead.
      const roll = random.int(10);
      const seq = roll < 7 ? Math.max(0, base + random.int(40) - 34) : roll < 9 ? base + random.int(3) + 1 : base + 30 + random.int(40);
      base = Math.max(base, seq);
      const expected = model.accept(seq);
      const got = await store.oscoreWindows.accept('random', seq);
      if (got !== expected) disagreements.push(`step ${i}: ${seq} ${got}, expected ${expected}`);
    }
    t.same(disagreements, [], `400 steps (seed ${random.seed})`);
  });

  t.test(`${name}: a datagram accepted by one instance is a replay on the other`, { skip: flags.sharedWindows ? false : 'this backend\'s windows are its one gateway\'s memory' }, async (t) => {
    const { store, openPeer } = await open(t);
    const peer = await openPeer();
    await store.oscoreWindows.establish('shared');
    t.equal(await store.oscoreWindows.accept('shared', 7), 'fresh');
    t.equal(await peer.oscoreWindows.accept('shared', 7), 'replay', 'the peer refuses it');
    const both = await Promise.all([store.oscoreWindows.accept('shared', 8), peer.oscoreWindows.accept('shared', 8)]);
    t.same([...both].sort(), ['fresh', 'replay'], 'sent to both at once: exactly one accepts it');
  });

  t.test(`${name}: a second instance holds no window of the first`, { skip: flags.sharedWindows ? 'this backend shares its windows' : false }, async (t) => {
    const { store, openPeer } = await open(t);
    const peer = await openPeer();
    await store.oscoreWindows.establish('mine');
    t.equal(await peer.oscoreWindows.accept('mine', 0), 'unknown', 'the peer recovers with Echo');
  });

  t.test(`${name}: a new context's window starts empty; a rotated or removed one's is gone`, async (t) => {
    const { store } = await open(t);
    const [sender] = await store.devices.allocateSenderIds(1) as [string];
    const record = withContext('ctx', sender);
    await store.devices.add([record]);
    const first = record.oscore!.generation;
    t.equal(await store.oscoreWindows.accept(first, 0), 'fresh', 'the first request of a new context needs no Echo recovery');
    const rotated = { ...record, oscore: oscoreContext(sender) };
    t.equal(await store.devices.replace(record, rotated), true);
    t.equal(await store.oscoreWindows.accept(first, 1), 'unknown', 'the rotated-out context\'s window is gone');
    t.equal(await store.oscoreWindows.accept(rotated.oscore.generation, 0), 'fresh', 'the new one\'s starts empty');
    t.equal(await store.devices.remove('ctx'), true);
    t.equal(await store.oscoreWindows.accept(rotated.oscore.generation, 1), 'unknown', 'a removed device\'s window is gone');
  });

  t.test(`${name}: sender sequence blocks never overlap, across instances and reopening; forgetting never starts them over`, async (t) => {
    const { store, openPeer, close } = await open(t);
    const peer = await openPeer();
    t.equal(await store.oscoreWindows.reserveSequence('seq', 10), 0, 'a context\'s first block starts at 0');
    t.equal(await peer.oscoreWindows.reserveSequence('seq', 10), 10, 'the other instance\'s next block follows it');
    t.equal(await peer.oscoreWindows.reserveSequence('other', 5), 0, 'each context counts its own');
    const blocks = await Promise.all([
      ...Array.from({ length: 8 }, () => store.oscoreWindows.reserveSequence('seq', 7).then((first) => [first, 7] as const)),
      ...Array.from({ length: 8 }, () => peer.oscoreWindows.reserveSequence('seq', 3).then((first) => [first, 3] as const)),
    ]);
    const taken = new Set<number>();
    let overlaps = 0;
    for (const [first, count] of blocks) {
      for (let n = first; n < first + count; n += 1) {
        if (taken.has(n)) overlaps += 1;
        taken.add(n);
      }
    }
    t.equal(overlaps, 0, '16 blocks reserved at once from two instances: no number twice');
    t.ok([...taken].every((n) => n >= 20), 'nor one of the earlier blocks');
    const end = 20 + 8 * 7 + 8 * 3;
    t.equal(Math.max(...taken), end - 1, 'and none skipped');

    await close(peer);
    const reopened = await openPeer();
    t.equal(await reopened.oscoreWindows.reserveSequence('seq', 1), end, 'an instance opened afresh goes on (a restart never reuses one)');
    await store.oscoreWindows.forget('seq');
    t.equal(await reopened.oscoreWindows.reserveSequence('seq', 1), end + 1, 'a forgotten context\'s numbers are retired, never started over');
    await t.rejects(store.oscoreWindows.reserveSequence('seq', 0), RangeError);
  });

  t.test(`${name}: a peer hears a rotation as a device change, and reads the new context when it does`, async (t) => {
    const { store, openPeer } = await open(t);
    const peer = await openPeer();
    const [sender] = await store.devices.allocateSenderIds(1) as [string];
    const record = withContext('heard', sender);
    await store.devices.add([record]);
    const rotated = { ...record, oscore: oscoreContext(sender) };
    const heard = new Promise<DeviceRecord | undefined>((resolve) => {
      const off = peer.subscribe((change: StoreChange) => {
        if (change.kind !== 'device' || change.id !== 'heard') return;
        peer.devices.get('heard').then((read) => {
          if (read?.oscore?.generation === record.oscore!.generation) return; // the add, heard late
          off();
          resolve(read);
        }, () => undefined);
      });
    });
    t.equal(await store.devices.replace(record, rotated), true);
    t.same((await heard)?.oscore, rotated.oscore, 'the peer reads the rotated context when it hears of it');
  });
}

import { exportJWK, generateKeyPair } from 'jose';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Test } from 'tap';
import { RateLimiterRes } from '../../gateway/src/store/rate-limiter-memory.ts';
import type { AdminErrorCode } from '../../gateway/src/errors.ts';
import {
  MAX_FAMILIES_PER_DEVICE, type DeviceRecord, type FamilyRevocation, type PublishedKey, type RefreshFamily, type Revocation, type Store,
  type StoreChange, type TokenRevocation,
} from '../../gateway/src/store/ports.ts';
import { conditions } from '../helpers/condition.ts';
import { oscoreContract } from './oscore-contract.ts';
import { deviceRecord } from '../helpers/store-fixtures.ts';

/**
 * One contract for every store backend (as aedes-persistence's abstract tests are for its
 * backends): each backend's test file passes a factory, and every case below runs unchanged on it.
 * Time moves by the injected clock; change-feed events are awaited, never slept for.
 */

export interface StoreClock {
  nowMs(): number;
}

export interface OpenedStore {
  store: Store;
  /** A second instance on the same shared state: another gateway, or the CLI. */
  openPeer(): Promise<Store>;
}

export interface StoreFactory {
  name: string;
  /**
   * Whether limiters of two instances on the same state count together. True for Redis (the
   * fleet shares its counters); false for the file store, whose limiters are this process's
   * memory: it serves one gateway, so there is no second gateway to share counts with.
   */
  sharedLimits: boolean;
  /**
   * Whether an id spent by one instance is refused by another. True for Redis (any gateway of the
   * fleet may see a replayed refresh token); false for the file store, whose spent ids are its one
   * gateway's memory and log (the CLI never spends, so the log has one writer and takes no lock).
   */
  sharedOnceIds: boolean;
  /**
   * Whether an OSCORE replay window is shared by two instances: true for Redis (a datagram
   * accepted by one gateway is a replay on the others); false for the file store, whose windows
   * are its one gateway's memory.
   */
  sharedWindows: boolean;
  /** A fresh, empty store; the factory removes what it made (temp dir, key prefix) on teardown. */
  open(clock: StoreClock): Promise<OpenedStore>;
}

const deviceChange = (id: string) => (change: StoreChange) => change.kind === 'device' && change.id === id;
const keyChange = (kid: string) => (change: StoreChange) => change.kind === 'key' && change.kid === kid;

async function publishedKey(kid: string, state: PublishedKey['state']): Promise<PublishedKey> {
  const { publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
  return { kid, alg: 'EdDSA', state, gateway: 'gw-a', createdAt: '2026-11-23T10:00:00.000Z', publicJwk: { ...(await exportJWK(publicKey)), kid } };
}

const adminError = (code: AdminErrorCode) => ({ name: 'AdminError', code });

const byKid = (keys: PublishedKey[]) => [...keys].sort((a, b) => a.kid.localeCompare(b.kid));

async function outcome(limiter: RateLimiterAbstract, key: string, points = 1): Promise<'allowed' | 'refused'> {
  try {
    await limiter.consume(key, points);
    return 'allowed';
  } catch (error) {
    // A refusal rejects with RateLimiterRes; anything else is the store failing.
    if (error instanceof RateLimiterRes) return 'refused';
    throw error;
  }
}

interface Heard<T> {
  change: StoreChange;
  /** What the listener read at the moment the change arrived. */
  observed: Promise<T> | undefined;
}

/** Records a store's change feed; `first` waits (bounded by the 5 s guard) for a matching change. */
function listen<T = never>(store: Store, observe?: (change: StoreChange) => Promise<T>) {
  const heard: Heard<T>[] = [];
  const waits = conditions();
  const unsubscribe = store.subscribe((change) => {
    const observed = observe?.(change);
    observed?.catch(() => {}); // awaited by the case that needs it; others must not go unhandled
    heard.push({ change, observed });
    waits.notify();
  });
  return {
    heard,
    unsubscribe,
    async first(match: (change: StoreChange) => boolean, what: string, from = 0): Promise<Heard<T>> {
      const find = () => heard.slice(from).find((h) => match(h.change));
      await waits.until(() => find() !== undefined, what);
      return find() as Heard<T>;
    },
  };
}

export function storeContract(t: Test, factory: StoreFactory): void {
  /** Opens a fresh store on a clock frozen at a whole second; closes whatever stayed open after the case. */
  async function open(t: Test) {
    let nowMs = Math.floor(Date.now() / 1000) * 1000;
    const clock = { nowMs: () => nowMs, nowSec: () => nowMs / 1000, advanceSec: (sec: number) => { nowMs += sec * 1000; } };
    const openStores = new Set<Store>();
    t.teardown(async () => { await Promise.all([...openStores].map((s) => s.close())); });
    const opened = await factory.open(clock);
    openStores.add(opened.store);
    return {
      store: opened.store,
      clock,
      async openPeer(): Promise<Store> {
        const peer = await opened.openPeer();
        openStores.add(peer);
        return peer;
      },
      async close(store: Store): Promise<void> {
        openStores.delete(store);
        await store.close();
      },
    };
  }

  t.test(`${factory.name}: devices are added, read, counted and removed`, async (t) => {
    const { store } = await open(t);
    t.equal(await store.devices.count(), 0, 'a fresh store is empty');
    await store.devices.add([deviceRecord('a'), deviceRecord('b')]);
    t.equal(await store.devices.count(), 2);
    t.same(await store.devices.get('a'), deviceRecord('a'));
    t.equal(await store.devices.get('nope'), undefined);
    t.equal(await store.devices.remove('a'), true);
    t.equal(await store.devices.remove('a'), false, 'already gone');
    t.equal(await store.devices.get('a'), undefined);
    t.equal(await store.devices.count(), 1);
  });

  t.test(`${factory.name}: a batch with a duplicate adds none of its devices`, async (t) => {
    const { store } = await open(t);
    await store.devices.add([deviceRecord('a'), deviceRecord('b')]);
    await t.rejects(store.devices.add([deviceRecord('c'), deviceRecord('a'), deviceRecord('d')]), adminError('GW_ERR_ADMIN_DUPLICATE_DEVICE'));
    t.equal(await store.devices.get('c'), undefined, 'the device before the duplicate was not added');
    t.equal(await store.devices.get('d'), undefined, 'nor the one after');
    t.same(await store.devices.get('a'), deviceRecord('a'), 'the existing device is unchanged');
    t.equal(await store.devices.count(), 2);
  });

  t.test(`${factory.name}: records round-trip every field, and one without recordId stays without`, async (t) => {
    const { store } = await open(t);
    const full = deviceRecord('full', { scopes: ['telemetry:write', 'config:read', 'fw/*'], createdAt: '2026-01-02T03:04:05.678Z' });
    const { recordId: _, ...legacy } = deviceRecord('legacy');
    await store.devices.add([full, legacy]);
    t.strictSame(await store.devices.get('full'), full);
    const read = await store.devices.get('legacy');
    t.strictSame(read, legacy);
    t.notOk(read !== undefined && Object.hasOwn(read, 'recordId'), 'no recordId key at all');
    const listed = new Map<string, DeviceRecord>();
    for await (const batch of store.devices.list()) for (const device of batch) listed.set(device.id, device);
    t.strictSame(listed.get('full'), full, 'list gives the same record');
    t.strictSame(listed.get('legacy'), legacy);
  });

  t.test(`${factory.name}: list yields every device exactly once across batches`, async (t) => {
    const { store } = await open(t);
    const total = 2500;
    await store.devices.add(Array.from({ length: total }, (_, i) => deviceRecord(`dev-${i}`)));
    t.equal(await store.devices.count(), total);
    const times = new Map<string, number>();
    let batches = 0;
    for await (const batch of store.devices.list()) {
      batches += 1;
      for (const device of batch) times.set(device.id, (times.get(device.id) ?? 0) + 1);
    }
    t.equal(times.size, total, 'every device listed');
    t.same([...times.values()].filter((n) => n !== 1), [], 'none listed twice');
    t.comment(`${batches} batch(es)`);
  });

  t.test(`${factory.name}: a peer hears device changes after they are visible to it`, async (t) => {
    const { store, openPeer } = await open(t);
    const peer = await openPeer();
    const ear = listen(peer, (change) => (change.kind === 'device' ? peer.devices.get(change.id) : Promise.resolve(undefined)));
    await store.devices.add([deviceRecord('x')]);
    const added = await ear.first(deviceChange('x'), 'the peer to hear the add');
    t.same(await added.observed, deviceRecord('x'), 'the peer reads the device when it hears of it');
    const mark = ear.heard.length;
    t.equal(await store.devices.remove('x'), true);
    const removed = await ear.first(deviceChange('x'), 'the peer to hear the removal', mark);
    t.equal(await removed.observed, undefined, 'the peer no longer reads it when it hears of the removal');
  });

  t.test(`${factory.name}: own changes reach own subscribers; unsubscribe stops delivery`, async (t) => {
    const { store, openPeer } = await open(t);
    const own = listen(store);
    const gone = listen(store);
    gone.unsubscribe();
    await store.devices.add([deviceRecord('y')]);
    await own.first(deviceChange('y'), 'the store to hear its own add');
    t.same(gone.heard, [], 'an unsubscribed listener hears nothing');

    const peer = await openPeer();
    const peerKept = listen(peer);
    const peerGone = listen(peer);
    peerGone.unsubscribe();
    await store.devices.remove('y');
    await peerKept.first(deviceChange('y'), 'the peer to hear the removal');
    t.same(peerGone.heard, [], 'nor does one unsubscribed from a peer');
  });

  t.test(`${factory.name}: a one-time id is spent once`, async (t) => {
    const { store, clock } = await open(t);
    const expiresAtSec = clock.nowSec() + 3600;
    t.equal(await store.onceIds.consume('jti-1', expiresAtSec), true, 'first use');
    t.equal(await store.onceIds.consume('jti-1', expiresAtSec), false, 'second use refused');
    t.equal(await store.onceIds.consume('jti-2', expiresAtSec), true, 'another id is independent');
    t.equal(await store.onceIds.consume('jti-2', expiresAtSec), false);
  });

  t.test(`${factory.name}: an id spent by one instance is refused by the other`, { skip: factory.sharedOnceIds ? false : 'this backend\'s spent ids have one writer (its gateway)' }, async (t) => {
    const { store, openPeer, clock } = await open(t);
    const peer = await openPeer();
    const expiresAtSec = clock.nowSec() + 3600;
    // Both have spent before either spends the ids checked: a view read once, at the first spend,
    // and never again would pass a check made right after its first read.
    t.equal(await store.onceIds.consume('warm-mine', expiresAtSec), true);
    t.equal(await peer.onceIds.consume('warm-theirs', expiresAtSec), true);
    t.equal(await store.onceIds.consume('mine', expiresAtSec), true);
    t.equal(await peer.onceIds.consume('theirs', expiresAtSec), true);
    t.equal(await peer.onceIds.consume('mine', expiresAtSec), false, 'the peer refuses what the store spent');
    t.equal(await store.onceIds.consume('theirs', expiresAtSec), false, 'and the other way round');
  });

  t.test(`${factory.name}: a one-time id stays spent until its expiry`, async (t) => {
    const { store, clock } = await open(t);
    const expiresAtSec = clock.nowSec() + 60;
    t.equal(await store.onceIds.consume('refresh-1', expiresAtSec), true);
    clock.advanceSec(59);
    t.equal(await store.onceIds.consume('refresh-1', expiresAtSec), false, 'refused a second before its expiry');
  });

  t.test(`${factory.name}: revocations are listed until they run out, and the peer hears them`, async (t) => {
    const { store, openPeer, clock } = await open(t);
    const peer = await openPeer();
    const ear = listen(peer);
    const now = clock.nowSec();
    const long: FamilyRevocation = { family: 'fam-long', deviceId: 'd1', atSec: now, untilSec: now + 3600 };
    const short: FamilyRevocation = { family: 'fam-short', deviceId: 'd2', atSec: now, untilSec: now + 10 };
    await store.revocations.revokeFamily(long);
    await store.revocations.revokeFamily(short);
    const byFamily = (list: Revocation[]) => [...list].sort((a, b) => String((a as FamilyRevocation).family).localeCompare(String((b as FamilyRevocation).family)));
    t.same(byFamily(await store.revocations.list(clock.nowSec())), [long, short]);
    const heard = await ear.first((c) => c.kind === 'revocation' && c.revocation.kind !== 'token' && c.revocation.family === 'fam-long', 'the peer to hear the revocation');
    t.same(heard.change, { kind: 'revocation', revocation: long }, 'the peer hears the whole revocation');
    t.same(byFamily(await peer.revocations.list(clock.nowSec())), [long, short], 'the peer lists both');
    clock.advanceSec(20);
    t.same(await store.revocations.list(clock.nowSec()), [long], 'a revocation past its untilSec is not listed');
    t.same(await peer.revocations.list(clock.nowSec()), [long]);
  });

  t.test(`${factory.name}: a token revocation is listed beside families until it runs out, and the peer hears it`, async (t) => {
    const { store, openPeer, clock } = await open(t);
    const peer = await openPeer();
    const ear = listen(peer);
    const now = clock.nowSec();
    const token: TokenRevocation = { kind: 'token', jti: 'jti-1', atSec: now, untilSec: now + 30 };
    const family: FamilyRevocation = { family: 'jti-1', deviceId: 'd1', atSec: now, untilSec: now + 3600 };
    await store.revocations.revokeToken(token);
    await store.revocations.revokeFamily(family);
    const heard = await ear.first((c) => c.kind === 'revocation' && c.revocation.kind === 'token', 'the peer to hear the token revocation');
    t.same(heard.change, { kind: 'revocation', revocation: token }, 'whole, with its kind');
    const listed = await peer.revocations.list(clock.nowSec());
    t.equal(listed.length, 2, 'a family and a jti of the same name are two revocations');
    t.same(listed.find((r) => r.kind === 'token'), token);
    await store.revocations.revokeToken({ ...token, untilSec: now + 40 });
    t.same((await store.revocations.list(clock.nowSec())).filter((r) => r.kind === 'token'), [{ ...token, untilSec: now + 40 }], 'the same jti again replaces it');
    clock.advanceSec(41);
    t.same(await store.revocations.list(clock.nowSec()), [family], 'past its untilSec it is not listed');
  });

  t.test(`${factory.name}: a device record is replaced only if it is still what was read`, async (t) => {
    const { store, openPeer } = await open(t);
    const peer = await openPeer();
    const ear = listen(peer, (change) => (change.kind === 'device' ? peer.devices.get(change.id) : Promise.resolve(undefined)));
    const key = { kid: 'k1', alg: 'EdDSA' as const, publicJwk: { kty: 'OKP', crv: 'Ed25519', x: 'lZJhodRB3NIsjUjla3ZC6X9-6xL-jjpSQch6V6PjLD4' }, addedAt: '2026-12-01T00:00:00.000Z' };
    await store.devices.add([deviceRecord('k', { keys: [key] })]);
    const read = (await store.devices.get('k'))!;
    t.strictSame(read, deviceRecord('k', { keys: [key] }), 'keys round-trip');
    const disabled = { ...read, disabled: true, recordId: 'rid-new' };
    const mark = ear.heard.length;
    t.equal(await store.devices.replace(read, disabled), true, 'replaced');
    const heard = await ear.first(deviceChange('k'), 'the peer to hear the replacement', mark);
    t.same(await heard.observed, disabled, 'the peer reads the new record when it hears of it');
    t.equal(await peer.devices.replace(read, { ...read, scopes: [] }), false, 'a replacement from a stale read is refused');
    t.same(await store.devices.get('k'), disabled, 'and changed nothing');
    const { secretHash: _, ...keyOnly } = disabled;
    t.equal(await peer.devices.replace(disabled, keyOnly), true, 'from a fresh read it works, from any instance');
    t.strictSame(await store.devices.get('k'), keyOnly, 'a record without a secret hash stays without');
    t.equal(await store.devices.replace(deviceRecord('nobody'), deviceRecord('nobody')), false, 'no such device');
    t.equal(await store.devices.count(), 1, 'a replacement adds nothing');
  });

  const family = (id: string, deviceId: string, clock: { nowSec(): number }, hash = `hash-${id}-0`): RefreshFamily =>
    ({ family: id, deviceId, recordId: `rid-${deviceId}`, currentHash: hash, expiresAtSec: Math.floor(clock.nowSec()) + 3600 });

  t.test(`${factory.name}: a refresh family rotates once per current token; a spent one is a reuse; ended is unknown`, async (t) => {
    const { store, clock } = await open(t);
    const started = family('f1', 'd1', clock);
    await store.refreshFamilies.start(started);
    const next = { currentHash: 'hash-f1-1', expiresAtSec: started.expiresAtSec + 60 };
    t.same(await store.refreshFamilies.rotate('f1', 'hash-f1-0', next), { outcome: 'rotated', family: { ...started, ...next } });
    t.same(await store.refreshFamilies.rotate('f1', 'hash-f1-0', { currentHash: 'hash-f1-2', expiresAtSec: next.expiresAtSec }),
      { outcome: 'reused', family: { ...started, ...next } }, 'the spent token again: a reuse, naming the family as it is');
    t.same(await store.refreshFamilies.rotate('f1', 'made-up', { currentHash: 'x', expiresAtSec: next.expiresAtSec }),
      { outcome: 'reused', family: { ...started, ...next } }, 'any other token of a live family, too');
    t.same((await store.refreshFamilies.rotate('f1', 'hash-f1-1', { currentHash: 'hash-f1-2', expiresAtSec: next.expiresAtSec })).outcome,
      'rotated', 'the current one still works: a reuse does not end the family by itself');
    t.same(await store.refreshFamilies.rotate('nope', 'h', next), { outcome: 'unknown' }, 'no such family');
    t.equal(await store.refreshFamilies.end('f1'), true);
    t.same(await store.refreshFamilies.rotate('f1', 'hash-f1-2', next), { outcome: 'unknown' }, 'an ended family is unknown');
    t.equal(await store.refreshFamilies.end('f1'), false, 'already ended');
  });

  t.test(`${factory.name}: a device keeps at most ${MAX_FAMILIES_PER_DEVICE} families; another device's are its own`, async (t) => {
    const { store, clock } = await open(t);
    const ids = Array.from({ length: MAX_FAMILIES_PER_DEVICE + 1 }, (_, i) => `fam-${i}`);
    for (const id of ids) {
      await store.refreshFamilies.start(family(id, 'busy', clock));
      clock.advanceSec(1);
    }
    await store.refreshFamilies.start(family('other', 'quiet', clock));
    t.same(await store.refreshFamilies.rotate(ids[0]!, `hash-${ids[0]}-0`, { currentHash: 'n', expiresAtSec: clock.nowSec() + 60 }),
      { outcome: 'unknown' }, 'the oldest family of the device ended when one more started');
    for (const id of ids.slice(1)) {
      t.equal((await store.refreshFamilies.rotate(id, `hash-${id}-0`, { currentHash: 'n', expiresAtSec: clock.nowSec() + 60 })).outcome, 'rotated', `${id} lives`);
    }
    t.equal((await store.refreshFamilies.rotate('other', 'hash-other-0', { currentHash: 'n', expiresAtSec: clock.nowSec() + 60 })).outcome, 'rotated');
  });

  t.test(`${factory.name}: a family rotated by one instance is a reuse on the other`, { skip: factory.sharedOnceIds ? false : 'this backend\'s families have one writer (its gateway)' }, async (t) => {
    const { store, openPeer, clock } = await open(t);
    const peer = await openPeer();
    await store.refreshFamilies.start(family('shared', 'd1', clock));
    const next = { currentHash: 'hash-shared-1', expiresAtSec: clock.nowSec() + 60 };
    const [a, b] = await Promise.all([
      store.refreshFamilies.rotate('shared', 'hash-shared-0', next),
      peer.refreshFamilies.rotate('shared', 'hash-shared-0', { ...next, currentHash: 'hash-shared-1b' }),
    ]);
    t.same([a.outcome, b.outcome].sort(), ['reused', 'rotated'], 'presented on two instances at once: one rotates, the other sees a reuse');
  });

  t.test(`${factory.name}: a nonce is taken once, with the address it was issued to`, async (t) => {
    const { store, clock } = await open(t);
    const entry = { address: '192.0.2.1', issuedAtMs: clock.nowMs() };
    await store.nonces.put('n-1', entry, 60_000);
    t.same(await store.nonces.take('n-1'), entry);
    t.equal(await store.nonces.take('n-1'), undefined, 'taken already');
    t.equal(await store.nonces.take('n-2'), undefined, 'never issued');
  });

  t.test(`${factory.name}: a nonce taken on one instance is gone on the other`, { skip: factory.sharedOnceIds ? false : 'this backend\'s nonces are its one gateway\'s memory' }, async (t) => {
    const { store, openPeer, clock } = await open(t);
    const peer = await openPeer();
    await store.nonces.put('n-shared', { address: '192.0.2.1', issuedAtMs: clock.nowMs() }, 60_000);
    const taken = await Promise.all([store.nonces.take('n-shared'), peer.nonces.take('n-shared')]);
    t.equal(taken.filter((e) => e !== undefined).length, 1, 'exactly one instance takes it');
  });

  t.test(`${factory.name}: keys are published, updated by kid, and retired`, async (t) => {
    const { store, clock } = await open(t);
    const active = await publishedKey('k-active', 'active');
    const verifying = { ...(await publishedKey('k-old', 'verifying')), verifyUntil: '2026-11-30T00:00:00.000Z' };
    await store.keys.publish(active);
    await store.keys.publish(verifying);
    t.same(byKid(await store.keys.list()), [active, verifying]);

    const demoted = { ...active, state: 'verifying' as const, verifyUntil: '2026-12-01T00:00:00.000Z' };
    await store.keys.publish(demoted);
    const next = await publishedKey('k-next', 'active');
    await store.keys.publish(next);
    t.same(byKid(await store.keys.list()), [demoted, next, verifying], 'a publish by kid replaces, never duplicates');

    // Retired now by the injected clock: a retired key is pruned a week after its retiredAt.
    const atIso = new Date(clock.nowMs()).toISOString();
    t.equal(await store.keys.retire('k-old', atIso), true);
    const retired = (await store.keys.list()).find((k) => k.kid === 'k-old');
    t.equal(retired?.state, 'retired');
    t.equal(retired?.retiredAt, atIso);
    t.same(retired?.publicJwk, verifying.publicJwk, 'the rest of the key is kept');
    t.equal(await store.keys.retire('k-old', atIso), false, 'already retired');
    t.equal(await store.keys.retire('k-unknown', atIso), false, 'no such key');
    await t.rejects(store.keys.retire('k-next', atIso), adminError('GW_ERR_ADMIN_ONLY_ACTIVE_KEY'));
    t.equal((await store.keys.list()).find((k) => k.kid === 'k-next')?.state, 'active', 'the active key stays active');
  });

  t.test(`${factory.name}: the peer hears key changes after they are visible to it`, async (t) => {
    const { store, openPeer, clock } = await open(t);
    const peer = await openPeer();
    const ear = listen(peer, (change) => (change.kind === 'key' ? peer.keys.list() : Promise.resolve([])));
    const key = await publishedKey('k-1', 'verifying');
    await store.keys.publish(key);
    const published = await ear.first(keyChange('k-1'), 'the peer to hear the publish');
    t.same(await published.observed, [key]);
    const mark = ear.heard.length;
    await store.keys.retire('k-1', new Date(clock.nowMs()).toISOString());
    const retired = await ear.first(keyChange('k-1'), 'the peer to hear the retirement', mark);
    t.same((await retired.observed)?.map((k) => k.state), ['retired']);
  });

  t.test(`${factory.name}: a limiter counts its points, separately per keyPrefix`, async (t) => {
    const { store } = await open(t);
    const login = store.limits.limiter({ keyPrefix: 'contract-login', points: 3, durationSec: 60 });
    const other = store.limits.limiter({ keyPrefix: 'contract-other', points: 3, durationSec: 60 });
    t.equal(await outcome(login, 'src', 2), 'allowed');
    t.equal(await outcome(login, 'src'), 'allowed');
    t.equal(await outcome(login, 'src'), 'refused', 'beyond its points');
    t.equal(await outcome(login, 'another-src'), 'allowed', 'keys count apart');
    t.equal(await outcome(other, 'src', 3), 'allowed', 'another keyPrefix counts apart');
  });

  t.test(`${factory.name}: limiters of two instances count together`, { skip: factory.sharedLimits ? false : 'this backend\'s limiters are per process (one gateway)' }, async (t) => {
    const { store, openPeer } = await open(t);
    const peer = await openPeer();
    const options = { keyPrefix: 'contract-shared', points: 5, durationSec: 60 };
    const mine = store.limits.limiter(options);
    const theirs = peer.limits.limiter(options);
    t.equal(await outcome(mine, 'src', 3), 'allowed');
    t.equal(await outcome(theirs, 'src', 2), 'allowed');
    t.equal(await outcome(mine, 'src'), 'refused', 'the total is shared');
    t.equal(await outcome(theirs, 'src'), 'refused');
  });

  t.test(`${factory.name}: two fresh stores share nothing`, async (t) => {
    const first = await open(t);
    await first.store.devices.add([deviceRecord('a')]);
    t.equal(await first.store.onceIds.consume('jti', first.clock.nowSec() + 60), true);
    t.equal(await outcome(first.store.limits.limiter({ keyPrefix: 'contract-fresh', points: 1, durationSec: 60 }), 'src'), 'allowed');
    const second = await open(t);
    t.equal(await second.store.devices.count(), 0);
    t.equal(await second.store.onceIds.consume('jti', second.clock.nowSec() + 60), true);
    t.equal(await outcome(second.store.limits.limiter({ keyPrefix: 'contract-fresh', points: 1, durationSec: 60 }), 'src'), 'allowed');
  });

  t.test(`${factory.name}: calls count round trips; a healthy store is available`, async (t) => {
    const { store, clock } = await open(t);
    t.equal(store.available(), true);
    const down: boolean[] = [];
    const off = store.onAvailability((up) => { if (!up) down.push(up); });
    // Writes only: a backend may answer reads from memory without a round trip.
    const uses: [string, () => Promise<unknown>][] = [
      ['devices.add', () => store.devices.add([deviceRecord('a')])],
      ['onceIds.consume', () => store.onceIds.consume('jti', clock.nowSec() + 60)],
      ['revocations.revokeFamily', () => store.revocations.revokeFamily({ family: 'f', deviceId: 'a', atSec: clock.nowSec(), untilSec: clock.nowSec() + 60 })],
      ['keys.publish', async () => store.keys.publish(await publishedKey('k', 'active'))],
      ['devices.remove', () => store.devices.remove('a')],
    ];
    for (const [name, use] of uses) {
      const before = store.calls();
      await use();
      t.ok(store.calls() > before, `${name} counts`);
    }
    off();
    t.equal(store.available(), true);
    t.same(down, [], 'never reported down');
  });

  t.test(`${factory.name}: close resolves, and a closed store's subscribers hear nothing more`, async (t) => {
    const { store, openPeer, close } = await open(t);
    const peer = await openPeer();
    const witness = await openPeer();
    const closedEar = listen(store);
    const witnessEar = listen(witness);
    await t.resolves(close(store));
    await peer.devices.add([deviceRecord('after-close-1')]);
    await peer.devices.add([deviceRecord('after-close-2')]);
    // The witness hears both; by then a still-open store would have too.
    await witnessEar.first(deviceChange('after-close-1'), 'the witness to hear the first add');
    await witnessEar.first(deviceChange('after-close-2'), 'the witness to hear the second add');
    t.same(closedEar.heard, [], 'the closed store told nobody');
  });

  oscoreContract(t, { name: factory.name, sharedWindows: factory.sharedWindows }, open);
}

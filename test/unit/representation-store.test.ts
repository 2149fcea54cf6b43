import t from 'tap';
import { RepresentationStore, type Representation } from '../../gateway/src/coap/representation-store.ts';

// RFC 7959 section 2.4: answers too large for one datagram, kept for the later Block2 requests;
// bounded by bytes, count and time, oldest first. Time moves by the injected clock.

function store(options: { maxBytes?: number; maxEntries?: number; lifetimeMs?: number } = {}) {
  let now = 7_000_000;
  let evicted = 0;
  const representations = new RepresentationStore({
    maxBytes: options.maxBytes ?? 1 << 20,
    maxEntries: options.maxEntries ?? 100,
    lifetimeMs: options.lifetimeMs ?? 60_000,
    nowMs: () => now,
    onEvict: () => { evicted += 1; },
  });
  return { representations, advanceMs: (ms: number) => { now += ms; }, evicted: () => evicted, nowMs: () => now };
}

const answer = (size: number, fill = 0x61): Representation['response'] => ({
  code: '2.05', payload: Buffer.alloc(size, fill), etag: Buffer.from('0102030405060708', 'hex'), contentFormat: 60,
});

t.test('put then get: the response, its Access-Token and its expiry', async (t) => {
  const { representations, nowMs } = store({ lifetimeMs: 1000 });
  const response = answer(3000);
  representations.put('k', response, 'tok');
  const got = representations.get('k');
  t.equal(got?.response, response);
  t.equal(got?.accessToken, 'tok');
  t.equal(got?.expiresAtMs, nowMs() + 1000);
  t.equal(representations.bytes, 3000);
  t.equal(representations.get('other'), undefined);
});

t.test('bounded by bytes: the oldest go first, each eviction counted, bytes within the bound', async (t) => {
  const { representations, evicted } = store({ maxBytes: 250 });
  for (const key of ['a', 'b', 'c']) representations.put(key, answer(100), undefined);
  t.equal(representations.bytes, 200, 'a, b: 200 bytes; c pushed out a');
  t.equal(evicted(), 1);
  t.equal(representations.get('a'), undefined, 'the oldest went');
  t.not(representations.get('b'), undefined);
  t.not(representations.get('c'), undefined);
  representations.put('d', answer(250), undefined);
  t.equal(representations.bytes, 250, 'a 250-byte answer pushes out both others');
  t.equal(evicted(), 3);
  t.not(representations.get('d'), undefined);
});

t.test('bounded by count: the oldest goes first', async (t) => {
  const { representations, evicted } = store({ maxEntries: 2 });
  for (const key of ['a', 'b', 'c']) representations.put(key, answer(10), undefined);
  t.equal(evicted(), 1);
  t.equal(representations.get('a'), undefined);
  t.not(representations.get('b'), undefined);
  t.not(representations.get('c'), undefined);
  t.equal(representations.bytes, 20);
});

t.test('an answer larger than the whole store is not kept, and evicts nothing', async (t) => {
  const { representations, evicted } = store({ maxBytes: 100 });
  representations.put('a', answer(50), undefined);
  representations.put('huge', answer(101), undefined);
  t.equal(representations.get('huge'), undefined);
  t.not(representations.get('a'), undefined);
  t.equal(representations.bytes, 50);
  t.equal(evicted(), 0);
});

t.test('putting the same key again replaces it without counting an eviction', async (t) => {
  const { representations, evicted } = store({ maxBytes: 150 });
  representations.put('k', answer(100, 0x61), 'one');
  representations.put('k', answer(120, 0x62), 'two');
  t.equal(representations.bytes, 120, 'the old bytes are freed first');
  t.equal(evicted(), 0);
  t.equal(representations.get('k')?.accessToken, 'two');
  t.equal(representations.get('k')?.response.payload[0], 0x62);
});

t.test('a representation lives exactly its lifetime; expired ones free their bytes', async (t) => {
  const { representations, advanceMs } = store({ lifetimeMs: 1000 });
  representations.put('a', answer(100), undefined);
  advanceMs(400);
  representations.put('b', answer(50), undefined);
  advanceMs(599);
  t.not(representations.get('a'), undefined, 'a alive at 999 ms');
  advanceMs(1);
  t.equal(representations.get('a'), undefined, 'a gone at 1000 ms');
  t.equal(representations.bytes, 50, 'only b is counted');
  t.not(representations.get('b'), undefined, 'b alive at 600 ms');
  advanceMs(400);
  t.equal(representations.get('b'), undefined, 'b gone at 1000 ms');
  t.equal(representations.bytes, 0, 'byte count back to 0');
});

t.test('clear forgets everything', async (t) => {
  const { representations } = store();
  representations.put('a', answer(10), undefined);
  representations.put('b', answer(20), undefined);
  representations.clear();
  t.equal(representations.bytes, 0);
  t.equal(representations.get('a'), undefined);
  t.equal(representations.get('b'), undefined);
  representations.put('c', answer(5), undefined);
  t.equal(representations.bytes, 5, 'counting restarts from 0');
});

import t from 'tap';
import { ExchangeTable } from '../../gateway/src/coap/exchange-table.ts';

// RFC 7252 section 4.5: exchanges by (endpoint, message ID) for EXCHANGE_LIFETIME; time moves by
// the injected clock.

function table(maxEntries = 100, maxBytes = 1 << 20) {
  let now = 1_000_000;
  const evicted: string[] = [];
  const exchanges = new ExchangeTable({ maxEntries, maxBytes, nowMs: () => now, onEvict: (which) => { evicted.push(which); } });
  return { exchanges, advanceMs: (ms: number) => { now += ms; }, evicted };
}

const reply = Buffer.from('6145000142ff', 'hex');

t.test('a new exchange is in flight; a retransmission joins it; once answered it gets the stored reply', async (t) => {
  const { exchanges } = table();
  t.equal(exchanges.begin('127.0.0.1:5000/1', 1000), undefined, 'first copy: new, goes to the handler');
  t.equal(exchanges.size, 1);
  t.match(exchanges.begin('127.0.0.1:5000/1', 1000), { reply: undefined }, 'second copy: in flight, nothing to send yet');
  exchanges.setReply('127.0.0.1:5000/1', Buffer.from([0x60, 0, 0, 1]));
  t.same(exchanges.begin('127.0.0.1:5000/1', 1000)?.reply, Buffer.from([0x60, 0, 0, 1]), 'third copy: the empty ACK sent meanwhile');
  exchanges.complete('127.0.0.1:5000/1', reply, true);
  t.same(exchanges.begin('127.0.0.1:5000/1', 1000)?.reply, reply, 'fourth copy: the stored reply, byte for byte');
  t.equal(exchanges.size, 1, 'still one exchange');
});

t.test('a separate response keeps the empty ACK as what duplicates get', async (t) => {
  const { exchanges } = table();
  exchanges.begin('a', 1000);
  exchanges.setReply('a', Buffer.from([0x60, 0, 0, 1]));
  exchanges.complete('a', undefined, true);
  t.same(exchanges.begin('a', 1000)?.reply, Buffer.from([0x60, 0, 0, 1]));
});

t.test('exchanges are per endpoint and message ID', async (t) => {
  const { exchanges } = table();
  t.equal(exchanges.begin('127.0.0.1:5000/1', 1000), undefined);
  t.equal(exchanges.begin('127.0.0.1:5001/1', 1000), undefined, 'same message ID, other port');
  t.equal(exchanges.begin('127.0.0.2:5000/1', 1000), undefined, 'same message ID, other address');
  t.equal(exchanges.begin('127.0.0.1:5000/2', 1000), undefined, 'same endpoint, other message ID');
  t.equal(exchanges.size, 4);
});

t.test('an exchange lives exactly its lifetime, counted from its first copy', async (t) => {
  const { exchanges, advanceMs } = table();
  exchanges.begin('a', 1000);
  advanceMs(600);
  exchanges.complete('a', reply, false);
  advanceMs(399);
  t.not(exchanges.begin('a', 1000), undefined, 'still a duplicate 999 ms after the first copy');
  advanceMs(1);
  t.equal(exchanges.begin('a', 1000), undefined, 'a new exchange at 1000 ms (the message ID may be reused)');
});

t.test('expired exchanges are pruned from every table, so the table does not grow with time', async (t) => {
  const { exchanges, advanceMs } = table();
  for (let i = 0; i < 30; i += 1) exchanges.begin(`p${i}`, 1000);
  for (let i = 0; i < 30; i += 1) { exchanges.begin(`a${i}`, 1000); exchanges.complete(`a${i}`, reply, true); }
  for (let i = 0; i < 5; i += 1) { exchanges.begin(`u${i}`, 1000); exchanges.complete(`u${i}`, reply, false); }
  advanceMs(1000);
  exchanges.begin('fresh', 1000);
  t.equal(exchanges.size, 1, 'only the fresh exchange is left');
  t.equal(exchanges.bytes, 0, 'and no stored bytes');
});

t.test('answered exchanges nobody authenticated evict only each other (an eighth of the bounds)', async (t) => {
  const { exchanges, evicted } = table(16);
  for (let i = 0; i < 10; i += 1) { exchanges.begin(`device${i}`, 1000); exchanges.complete(`device${i}`, reply, true); }
  for (let i = 0; i < 1000; i += 1) { exchanges.begin(`forged${i}`, 1000); exchanges.complete(`forged${i}`, reply, false); }
  for (let i = 0; i < 10; i += 1) t.not(exchanges.begin(`device${i}`, 1000), undefined, `device ${i}'s exchange survives the flood`);
  t.equal(exchanges.begin('forged0', 1000), undefined, 'the oldest forged exchanges went');
  t.ok(evicted.every((which) => which === 'unauthenticated'), 'every eviction was of an unauthenticated exchange');
  t.equal(evicted.length, 1000 - 2, 'two (16 / 8) are kept');
});

t.test('bounded by count: the oldest authenticated exchange goes first, and the eviction is counted', async (t) => {
  const { exchanges, evicted } = table(3);
  for (const key of ['a', 'b', 'c', 'd']) { exchanges.begin(key, 1000); exchanges.complete(key, reply, true); }
  t.equal(exchanges.size, 3);
  t.same(evicted, ['authenticated']);
  t.equal(exchanges.begin('a', 1000), undefined, 'a was evicted: a copy of it now is new');
  t.not(exchanges.begin('d', 1000), undefined, 'd is still known');
});

t.test('bounded by the bytes of stored replies', async (t) => {
  const { exchanges, evicted } = table(100, 10);
  for (const key of ['a', 'b', 'c']) { exchanges.begin(key, 1000); exchanges.complete(key, Buffer.alloc(4), true); }
  t.ok(exchanges.bytes <= 10, `bytes within the bound (${exchanges.bytes})`);
  t.equal(evicted.length, 1, 'the oldest went');
  t.equal(exchanges.begin('a', 1000), undefined);
});

t.test('requests in flight are bounded too', async (t) => {
  const { exchanges, evicted } = table(2);
  for (const key of ['a', 'b', 'c']) exchanges.begin(key, 1000);
  t.same(evicted, ['in_flight']);
  exchanges.clear();
  t.equal(exchanges.size, 0);
  t.equal(exchanges.bytes, 0);
});

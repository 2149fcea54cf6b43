import t from 'tap';
import { ExchangeTable } from '../../gateway/src/coap/exchange-table.ts';

// RFC 7252 section 4.5: exchanges by (endpoint, message ID) for EXCHANGE_LIFETIME; time moves by
// the injected clock.

function table(maxEntries = 100, maxBytes = 1 << 20) {
  let now = 1_000_000;
  let evicted = 0;
  const exchanges = new ExchangeTable({ maxEntries, maxBytes, nowMs: () => now, onEvict: () => { evicted += 1; } });
  return { exchanges, advanceMs: (ms: number) => { now += ms; }, evicted: () => evicted };
}

const reply = Buffer.from('6145000142ff', 'hex');

t.test('a new exchange has no reply; a retransmission joins it; once answered it gets the stored reply', async (t) => {
  const { exchanges } = table();
  t.equal(exchanges.begin('127.0.0.1:5000/1', 1000), undefined, 'first copy: new, goes to the handler');
  t.equal(exchanges.size, 1);
  t.match(exchanges.begin('127.0.0.1:5000/1', 1000), { reply: undefined }, 'second copy: in flight');
  exchanges.setReply('127.0.0.1:5000/1', reply);
  t.same(exchanges.begin('127.0.0.1:5000/1', 1000)?.reply, reply, 'third copy: the stored reply, byte for byte');
  t.equal(exchanges.size, 1, 'still one exchange');
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
  exchanges.setReply('a', reply);
  advanceMs(399);
  t.not(exchanges.begin('a', 1000), undefined, 'still a duplicate 999 ms after the first copy');
  advanceMs(1);
  t.equal(exchanges.begin('a', 1000), undefined, 'a new exchange at 1000 ms (the message ID may be reused)');
});

t.test('expired exchanges are pruned, so the table does not grow with time', async (t) => {
  const { exchanges, advanceMs } = table();
  for (let i = 0; i < 50; i += 1) exchanges.begin(`k${i}`, 1000);
  advanceMs(1000);
  exchanges.begin('fresh', 1000);
  t.equal(exchanges.size, 1, 'only the fresh exchange is left');
});

t.test('bounded by count: the oldest exchange goes first, and the eviction is counted', async (t) => {
  const { exchanges, evicted } = table(3);
  for (const key of ['a', 'b', 'c', 'd']) exchanges.begin(key, 1000);
  t.equal(exchanges.size, 3);
  t.equal(evicted(), 1);
  t.equal(exchanges.begin('a', 1000), undefined, 'a was evicted: a copy of it now is new');
  t.not(exchanges.begin('d', 1000), undefined, 'd is still known');
});

t.test('bounded by the bytes of stored replies', async (t) => {
  const { exchanges, evicted } = table(100, 10);
  for (const key of ['a', 'b', 'c']) {
    exchanges.begin(key, 1000);
    exchanges.setReply(key, Buffer.alloc(4));
  }
  t.ok(exchanges.bytes <= 10, `bytes within the bound (${exchanges.bytes})`);
  t.equal(evicted(), 1, 'the oldest went');
  t.equal(exchanges.begin('a', 1000), undefined);
});

t.test('replacing a reply (empty ACK, then nothing else) keeps the byte count right', async (t) => {
  const { exchanges } = table();
  exchanges.begin('a', 1000);
  exchanges.setReply('a', Buffer.alloc(4));
  exchanges.setReply('a', Buffer.alloc(10));
  t.equal(exchanges.bytes, 10);
  exchanges.clear();
  t.equal(exchanges.bytes, 0);
  t.equal(exchanges.size, 0);
});

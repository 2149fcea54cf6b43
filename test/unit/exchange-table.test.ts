import t from 'tap';
import { ExchangeTable } from '../../gateway/src/coap/exchange-table.ts';

// RFC 7252 section 4.5: exchanges by (endpoint, message ID) for EXCHANGE_LIFETIME; time moves by
// the injected clock.

function table(lifetimeMs = 1000, maxEntries = 100, maxBytes = 1 << 20) {
  let now = 1_000_000;
  const exchanges = new ExchangeTable({ lifetimeMs, maxEntries, maxBytes, nowMs: () => now });
  return { exchanges, advanceMs: (ms: number) => { now += ms; } };
}

const answer = { code: '2.05', payload: Buffer.from([0xa0]), contentFormat: 60 };

t.test('a new exchange is pending; a retransmission joins it; once complete it gets the stored answer', async (t) => {
  const { exchanges } = table();
  t.equal(exchanges.begin('127.0.0.1:5000/1'), undefined, 'first copy: new, goes to the handler');
  t.equal(exchanges.size, 1);
  t.match(exchanges.begin('127.0.0.1:5000/1'), { state: 'pending' }, 'second copy: in flight');
  exchanges.complete('127.0.0.1:5000/1', answer);
  const done = exchanges.begin('127.0.0.1:5000/1');
  t.match(done, { state: 'done' }, 'third copy: answered');
  t.equal(done?.state === 'done' ? done.response : undefined, answer, 'with the stored answer itself');
  t.equal(exchanges.size, 1, 'still one exchange');
});

t.test('exchanges are per endpoint and message ID', async (t) => {
  const { exchanges } = table();
  t.equal(exchanges.begin('127.0.0.1:5000/1'), undefined);
  t.equal(exchanges.begin('127.0.0.1:5001/1'), undefined, 'same message ID, other port');
  t.equal(exchanges.begin('127.0.0.2:5000/1'), undefined, 'same message ID, other address');
  t.equal(exchanges.begin('127.0.0.1:5000/2'), undefined, 'same endpoint, other message ID');
  t.equal(exchanges.size, 4);
});

t.test('an exchange lives exactly lifetimeMs, counted from its first copy', async (t) => {
  const { exchanges, advanceMs } = table(1000);
  exchanges.begin('a');
  advanceMs(600);
  exchanges.complete('a', answer);
  advanceMs(399);
  t.match(exchanges.begin('a'), { state: 'done' }, '999 ms: still answered from the table');
  advanceMs(1);
  t.equal(exchanges.begin('a'), undefined, '1000 ms: expired, completing did not extend it; a new exchange');
  t.match(exchanges.begin('a'), { state: 'pending' }, 'the new exchange is pending');
  t.equal(exchanges.size, 1);
});

t.test('expired exchanges are pruned on the next begin', async (t) => {
  const { exchanges, advanceMs } = table(1000);
  exchanges.begin('a');
  exchanges.begin('b');
  advanceMs(500);
  exchanges.begin('c');
  advanceMs(500);
  exchanges.begin('d');
  t.equal(exchanges.size, 2, 'a and b expired and are gone; c and d remain');
  t.match(exchanges.begin('c'), { state: 'pending' });
});

t.test('bounded: when full, the oldest exchange goes first', async (t) => {
  const { exchanges, advanceMs } = table(10_000, 3);
  for (const key of ['a', 'b', 'c']) {
    exchanges.begin(key);
    advanceMs(1);
  }
  exchanges.complete('a', answer);
  t.equal(exchanges.begin('d'), undefined);
  t.equal(exchanges.size, 3, 'never more than maxEntries');
  t.match(exchanges.begin('b'), { state: 'pending' }, 'b kept');
  t.match(exchanges.begin('c'), { state: 'pending' }, 'c kept');
  t.match(exchanges.begin('d'), { state: 'pending' }, 'd kept');
  t.equal(exchanges.begin('a'), undefined, 'a, the oldest, was evicted: a new exchange');
  t.equal(exchanges.size, 3);
});

t.test('complete on an unknown or evicted exchange stores nothing', async (t) => {
  const { exchanges } = table();
  exchanges.complete('nobody', answer);
  t.equal(exchanges.size, 0);
  t.equal(exchanges.begin('nobody'), undefined);
});

t.test('clear forgets every exchange', async (t) => {
  const { exchanges } = table();
  exchanges.begin('a');
  exchanges.begin('b');
  exchanges.clear();
  t.equal(exchanges.size, 0);
  t.equal(exchanges.begin('a'), undefined);
});

t.test('stored answers are bounded by bytes: the oldest exchanges go first', async (t) => {
  const { exchanges } = table(1000, 100, 250);
  const big = { code: '2.05', payload: Buffer.alloc(100) };
  for (const key of ['a', 'b', 'c']) {
    t.equal(exchanges.begin(key), undefined);
    exchanges.complete(key, big);
  }
  t.equal(exchanges.size, 2, '300 bytes > 250: the oldest answer went');
  t.equal(exchanges.begin('a'), undefined, 'a was forgotten (and starts anew)');
  t.equal(exchanges.begin('c')?.state, 'done', 'the newest is kept');
});

import t from 'tap';
import { Block1Assembler } from '../../gateway/src/coap/block1-assembler.ts';

// RFC 7959 section 2.5: Block1 reassembly, bounded by bytes, count and lifetime (the issue's
// unauthenticated memory exhaustion). Time moves by the injected clock.

function assembler(options: { maxBytes?: number; maxEntries?: number; lifetimeMs?: number } = {}) {
  let now = 5_000_000;
  let evicted = 0;
  const reported: number[] = [];
  const uploads = new Block1Assembler({
    maxBytes: options.maxBytes ?? 1 << 20,
    maxEntries: options.maxEntries ?? 100,
    lifetimeMs: options.lifetimeMs ?? 60_000,
    nowMs: () => now,
    onEvict: () => { evicted += 1; },
    onBytesChanged: (bytes) => { reported.push(bytes); },
  });
  return { uploads, advanceMs: (ms: number) => { now += ms; }, evicted: () => evicted, reported };
}

const bytes = (n: number, fill = 0x61) => Buffer.alloc(n, fill);

t.test('start, append, take: the concatenation of the blocks, and the bytes freed', async (t) => {
  const { uploads, reported } = assembler();
  t.equal(uploads.start('k', 'tok', Buffer.from('abc')), true);
  t.equal(uploads.bytes, 3);
  t.equal(uploads.append('k', Buffer.from('def')), true);
  t.equal(uploads.append('k', Buffer.from('g')), true);
  t.equal(uploads.bytes, 7);
  t.equal(uploads.get('k')?.bytes, 7, 'the upload counts its own bytes');
  t.equal(uploads.get('k')?.accessToken, 'tok', 'and keeps the Access-Token of block 0');
  t.equal(uploads.take('k').toString(), 'abcdefg');
  t.equal(uploads.bytes, 0, 'taking frees the bytes');
  t.equal(uploads.size, 0);
  t.equal(uploads.get('k'), undefined, 'the upload is forgotten');
  t.same(reported, [3, 6, 7, 0], 'every change of the buffered bytes is reported, back to 0');
});

t.test('the buffered blocks are copies: the datagram buffers may be reused', async (t) => {
  const { uploads } = assembler();
  const first = Buffer.from('first-');
  const second = Buffer.from('second');
  uploads.start('k', undefined, first);
  first.fill(0x58);
  uploads.append('k', second);
  second.fill(0x59);
  t.equal(uploads.take('k').toString(), 'first-second');
});

t.test('the body taken is the caller\'s: a one-block upload too', async (t) => {
  const { uploads } = assembler();
  const first = Buffer.from('only');
  uploads.start('k', undefined, first);
  const body = uploads.take('k');
  body.fill(0x5a);
  t.equal(first.toString(), 'only', 'the input is untouched by changes to the body');
});

t.test('bounded by bytes: start is refused when full, and nothing else is evicted', async (t) => {
  const { uploads, evicted } = assembler({ maxBytes: 100 });
  t.equal(uploads.start('a', 'ta', bytes(60)), true);
  t.equal(uploads.start('b', 'tb', bytes(41)), false, '60 + 41 > 100: refused');
  t.equal(uploads.bytes, 60, 'nothing buffered for b');
  t.not(uploads.get('a'), undefined, 'a is still there');
  t.equal(uploads.get('b'), undefined);
  t.equal(evicted(), 0, 'no eviction');
  t.equal(uploads.start('b', 'tb', bytes(40)), true, '60 + 40 = 100 fits exactly');
  t.equal(uploads.bytes, 100);
});

t.test('bounded by count: start is refused past maxEntries, and nothing else is evicted', async (t) => {
  const { uploads, evicted } = assembler({ maxEntries: 2 });
  t.equal(uploads.start('a', undefined, bytes(1)), true);
  t.equal(uploads.start('b', undefined, bytes(1)), true);
  t.equal(uploads.start('c', undefined, bytes(1)), false);
  t.equal(uploads.size, 2);
  t.equal(evicted(), 0);
  t.not(uploads.get('a'), undefined);
  t.not(uploads.get('b'), undefined);
  t.equal(uploads.bytes, 2);
});

t.test('append past the byte bound is refused and drops that upload, freeing its bytes', async (t) => {
  const { uploads } = assembler({ maxBytes: 100 });
  uploads.start('a', undefined, bytes(50));
  uploads.start('b', undefined, bytes(30));
  t.equal(uploads.append('a', bytes(21)), false, '80 + 21 > 100');
  t.equal(uploads.get('a'), undefined, 'the upload that overflowed is gone');
  t.not(uploads.get('b'), undefined, 'the other stays');
  t.equal(uploads.bytes, 30);
});

t.test('append to an upload that was never started is refused and changes nothing', async (t) => {
  const { uploads, reported } = assembler();
  t.equal(uploads.append('nope', bytes(10)), false);
  t.equal(uploads.bytes, 0);
  t.equal(uploads.size, 0);
  t.same(reported, []);
});

t.test('an upload lives exactly its lifetime from block 0; expiry is an eviction and frees its bytes', async (t) => {
  const { uploads, advanceMs, evicted } = assembler({ lifetimeMs: 1000 });
  uploads.start('k', undefined, bytes(10));
  advanceMs(500);
  uploads.append('k', bytes(10));
  advanceMs(499);
  t.not(uploads.get('k'), undefined, 'alive at 999 ms');
  advanceMs(1);
  t.equal(uploads.get('k'), undefined, 'gone at 1000 ms: later blocks do not extend the lifetime');
  t.equal(evicted(), 1);
  t.equal(uploads.bytes, 0);
  t.equal(uploads.size, 0);
});

t.test('expired uploads make room for new ones', async (t) => {
  const { uploads, advanceMs } = assembler({ maxBytes: 100, maxEntries: 1, lifetimeMs: 1000 });
  uploads.start('a', undefined, bytes(100));
  t.equal(uploads.start('b', undefined, bytes(1)), false, 'full while a lives');
  advanceMs(1000);
  t.equal(uploads.start('b', undefined, bytes(100)), true, 'a expired: b fits');
  t.equal(uploads.bytes, 100);
  t.equal(uploads.size, 1);
});

t.test('starting the same key again restarts it: counted as an eviction, the old bytes freed', async (t) => {
  const { uploads, evicted } = assembler({ maxBytes: 100 });
  uploads.start('k', 'old', bytes(60, 0x6f));
  uploads.append('k', bytes(20, 0x6f));
  t.equal(uploads.start('k', 'new', bytes(60, 0x6e)), true, 'its own old bytes do not count against the restart');
  t.equal(evicted(), 1);
  t.equal(uploads.bytes, 60);
  t.equal(uploads.size, 1);
  t.equal(uploads.get('k')?.accessToken, 'new');
  t.ok(uploads.take('k').equals(bytes(60, 0x6e)), 'only the new block');
});

t.test('delete and clear free the bytes and report 0', async (t) => {
  const { uploads, reported } = assembler();
  uploads.start('a', undefined, bytes(10));
  uploads.start('b', undefined, bytes(20));
  uploads.delete('a');
  t.equal(uploads.bytes, 20);
  uploads.delete('a');
  t.equal(uploads.bytes, 20, 'deleting twice is harmless');
  uploads.start('c', undefined, bytes(5));
  uploads.clear();
  t.equal(uploads.bytes, 0);
  t.equal(uploads.size, 0);
  t.equal(reported.at(-1), 0, 'the last report is 0');
});

t.test('take of an unknown key is an empty body and changes nothing', async (t) => {
  const { uploads } = assembler();
  uploads.start('a', undefined, bytes(10));
  t.equal(uploads.take('nope').length, 0);
  t.equal(uploads.bytes, 10);
});

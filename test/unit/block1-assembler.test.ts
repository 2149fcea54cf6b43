import t from 'tap';
import { Block1Assembler, type UploadStart } from '../../gateway/src/coap/block1-assembler.ts';

// RFC 7959 section 2.5: Block1 reassembly, bounded by bytes set aside, count and lifetime (the
// issue's unauthenticated memory exhaustion). Each upload sets aside room for its whole body when
// it starts; unauthenticated ones share an eighth of the buffer, one per endpoint. Time moves by
// the injected clock.

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

/** maxBytes 800: unauthenticated uploads share 100 bytes, authenticated ones the other 700. */
const BUFFER = { maxBytes: 800 };
const AUTHENTICATED_SHARE = 700;
const ANONYMOUS_SHARE = 100;

interface StartSpec { accessToken?: string; reservedBytes?: number; maxBodyBytes?: number; anonymousEndpoint?: string; owner?: string }

/** An authenticated upload unless `anonymousEndpoint` is given; its reservation is its maxBodyBytes unless said. */
const upload = (first: Buffer, spec: StartSpec = {}): UploadStart => ({
  accessToken: spec.accessToken,
  first,
  reservedBytes: spec.reservedBytes ?? spec.maxBodyBytes ?? 1000,
  maxBodyBytes: spec.maxBodyBytes ?? 1000,
  anonymousEndpoint: spec.anonymousEndpoint,
  owner: spec.owner,
});

const bytes = (n: number, fill = 0x61) => Buffer.alloc(n, fill);

t.test('start, append, take: the concatenation of the blocks, and the bytes freed', async (t) => {
  const { uploads, reported } = assembler();
  t.equal(uploads.start('k', upload(Buffer.from('abc'), { accessToken: 'tok', reservedBytes: 7, maxBodyBytes: 16 })), true);
  t.equal(uploads.bytes, 3, 'the gauge counts the bytes buffered, not the 7 set aside');
  t.equal(uploads.append('k', Buffer.from('def')), true);
  t.equal(uploads.append('k', Buffer.from('g')), true, 'a body of exactly its reservation fits');
  t.equal(uploads.bytes, 7);
  t.equal(uploads.get('k')?.bytes, 7, 'the upload counts its own bytes');
  t.equal(uploads.get('k')?.accessToken, 'tok', 'and keeps the Access-Token of block 0');
  t.equal(uploads.get('k')?.reservedBytes, 7, 'and the bytes set aside for it');
  t.equal(uploads.get('k')?.maxBodyBytes, 16, 'and the largest body it may have');
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
  uploads.start('k', upload(first));
  first.fill(0x58);
  uploads.append('k', second);
  second.fill(0x59);
  t.equal(uploads.take('k').toString(), 'first-second');
});

t.test('the body taken is the caller\'s: a one-block upload too', async (t) => {
  const { uploads } = assembler();
  const first = Buffer.from('only');
  uploads.start('k', upload(first));
  const body = uploads.take('k');
  body.fill(0x5a);
  t.equal(first.toString(), 'only', 'the input is untouched by changes to the body');
});

t.test('reservations, not buffered bytes, decide admission; a refusal evicts nothing', async (t) => {
  const { uploads, evicted } = assembler(BUFFER);
  t.equal(uploads.start('a', upload(bytes(10), { accessToken: 'ta', reservedBytes: 600 })), true);
  t.equal(uploads.bytes, 10, '10 bytes buffered, 600 set aside');
  t.equal(uploads.start('b', upload(bytes(10), { accessToken: 'tb', reservedBytes: 101 })), false,
    '600 + 101 set aside > 700: refused though 790 bytes of the buffer are empty');
  t.equal(uploads.bytes, 10, 'nothing buffered for b');
  t.not(uploads.get('a'), undefined, 'a is still there');
  t.equal(uploads.get('b'), undefined);
  t.equal(evicted(), 0, 'no eviction');
  t.equal(uploads.start('b', upload(bytes(10), { accessToken: 'tb', reservedBytes: 100 })), true, '600 + 100 = 700 fits exactly');
  t.equal(uploads.bytes, 20);
  t.equal(uploads.start('c', upload(bytes(1), { reservedBytes: 1 })), false,
    'an authenticated upload may not use the eighth kept for unauthenticated ones');
  t.equal(uploads.size, 2);
});

t.test('an upload under way finishes even after other starts were refused and the buffer is full', async (t) => {
  const { uploads, evicted } = assembler(BUFFER);
  const body = Buffer.from(Array.from({ length: AUTHENTICATED_SHARE }, (_, i) => i & 0xff));
  t.equal(uploads.start('a', upload(body.subarray(0, 100), { accessToken: 'ta', reservedBytes: AUTHENTICATED_SHARE })), true);
  t.equal(uploads.start('b', upload(bytes(1), { accessToken: 'tb', reservedBytes: 1 })), false, 'b refused: a set aside the share');
  t.equal(uploads.start('c', upload(bytes(10), { reservedBytes: ANONYMOUS_SHARE, anonymousEndpoint: 'ep-c' })), true,
    'an unauthenticated upload takes the eighth');
  t.equal(uploads.append('c', bytes(90)), true);
  t.equal(uploads.start('d', upload(bytes(1), { reservedBytes: 1, anonymousEndpoint: 'ep-d' })), false, 'd refused: the eighth is taken');
  for (let at = 100; at < AUTHENTICATED_SHARE; at += 100) {
    t.equal(uploads.append('a', body.subarray(at, at + 100)), true, `a: bytes ${at} to ${at + 100} appended`);
  }
  t.equal(uploads.bytes, 800, 'every byte of the buffer in use');
  t.ok(uploads.take('a').equals(body), 'a finished whole');
  t.equal(uploads.bytes, ANONYMOUS_SHARE, 'its bytes freed');
  t.equal(evicted(), 0, 'nobody was pushed out');
  t.equal(uploads.start('b', upload(bytes(1), { accessToken: 'tb', reservedBytes: AUTHENTICATED_SHARE })), true,
    'a\'s reservation freed: a full-size start fits');
});

t.test('append past its own reservation returns false, drops that upload and frees its bytes and reservation', async (t) => {
  const { uploads, evicted, reported } = assembler(BUFFER);
  uploads.start('a', upload(bytes(60), { reservedBytes: 100 }));
  uploads.start('b', upload(bytes(10), { reservedBytes: 600 }));
  t.equal(uploads.append('a', bytes(41)), false, '60 + 41 > the 100 its Size1 announced');
  t.equal(uploads.get('a'), undefined, 'the upload that passed its reservation is gone');
  t.not(uploads.get('b'), undefined, 'the other stays');
  t.equal(uploads.bytes, 10, 'a\'s bytes freed');
  t.equal(reported.at(-1), 10, 'and reported');
  t.equal(evicted(), 0, 'a device that lied about its size is not an eviction');
  t.equal(uploads.append('a', bytes(1)), false, 'a later block finds no upload');
  t.equal(uploads.start('c', upload(bytes(1), { reservedBytes: 100 })), true, 'a\'s 100 bytes set aside are free again');
  t.equal(uploads.start('d', upload(bytes(1), { reservedBytes: 1 })), false, 'and nothing more');
});

t.test('a first block larger than its reservation cannot take bytes nobody set aside', async (t) => {
  // A device whose Size1 (0 here) is smaller than block 0 lies from the start: the buffer's bound holds anyway.
  const { uploads } = assembler(BUFFER);
  for (let n = 0; n < 20; n += 1) uploads.start(`anonymous-${n}`, upload(bytes(64), { reservedBytes: 0, anonymousEndpoint: `ep-${n}` }));
  t.ok(uploads.bytes <= ANONYMOUS_SHARE, `unauthenticated uploads buffer at most their eighth: ${uploads.bytes} <= ${ANONYMOUS_SHARE} bytes`);
  for (let n = 0; n < 20; n += 1) uploads.start(`authenticated-${n}`, upload(bytes(64), { reservedBytes: 0 }));
  t.ok(uploads.bytes <= BUFFER.maxBytes, `all uploads buffer at most maxBytes: ${uploads.bytes} <= ${BUFFER.maxBytes} bytes`);
});

t.test('unauthenticated uploads share an eighth of the buffer and leave the rest to authenticated ones', async (t) => {
  const { uploads, evicted } = assembler(BUFFER);
  t.equal(uploads.start('x', upload(bytes(10), { reservedBytes: ANONYMOUS_SHARE + 1, anonymousEndpoint: 'ep-x' })), false,
    'more than the eighth: refused even with the buffer empty');
  t.equal(uploads.start('a', upload(bytes(10), { reservedBytes: 60, anonymousEndpoint: 'ep-a' })), true);
  t.equal(uploads.start('b', upload(bytes(10), { reservedBytes: 41, anonymousEndpoint: 'ep-b' })), false, '60 + 41 > 100');
  t.equal(uploads.start('b', upload(bytes(10), { reservedBytes: 40, anonymousEndpoint: 'ep-b' })), true, '60 + 40 = 100 fits exactly');
  t.equal(uploads.start('c', upload(bytes(1), { reservedBytes: 1, anonymousEndpoint: 'ep-c' })), false, 'the eighth is full');
  t.equal(uploads.start('d', upload(bytes(10), { accessToken: 'td', reservedBytes: AUTHENTICATED_SHARE })), true,
    'the other seven eighths are all there for an authenticated upload');
  t.equal(uploads.start('e', upload(bytes(1), { accessToken: 'te', reservedBytes: 1 })), false, 'and no more');
  t.equal(evicted(), 0);
  t.equal(uploads.size, 3);
  t.equal(uploads.bytes, 30);
});

t.test('unauthenticated uploads of one source: a full source is refused, nothing under way is evicted', async (t) => {
  const { uploads, evicted } = assembler(BUFFER);
  const anonymous = (source: string) => ({ reservedBytes: 10, anonymousEndpoint: source, owner: `unauthenticated ${source}` });
  for (let i = 0; i < 4; i += 1) t.equal(uploads.start(`a${i}`, upload(bytes(5), anonymous('ep-a'))), true, `source a, upload ${i + 1}`);
  t.equal(uploads.start('a4', upload(bytes(5), anonymous('ep-a'))), false, 'a fifth from the same source is refused');
  t.equal(evicted(), 0, 'and nothing under way was evicted for it (another host may share the address)');
  t.equal(uploads.append('a0', bytes(5)), true, 'the first upload carries on');
  t.equal(uploads.start('b0', upload(bytes(5), anonymous('ep-b'))), true, 'another source is unaffected');
  t.equal(uploads.start('a0', upload(bytes(5), anonymous('ep-a'))), true, 'a restart of its own upload is no fifth');
  t.equal(evicted(), 1, 'the restart replaced the old one (an eviction)');
});

t.test('bounded by count: start is refused past maxEntries, and nothing else is evicted', async (t) => {
  const { uploads, evicted } = assembler({ maxEntries: 2 });
  t.equal(uploads.start('a', upload(bytes(1), { reservedBytes: 1, anonymousEndpoint: 'ep-a' })), true);
  t.equal(uploads.start('b', upload(bytes(1), { reservedBytes: 1 })), true);
  t.equal(uploads.start('c', upload(bytes(1), { reservedBytes: 1 })), false);
  t.equal(uploads.start('d', upload(bytes(1), { reservedBytes: 1, anonymousEndpoint: 'ep-d' })), false, 'an unauthenticated one too');
  t.equal(uploads.size, 2);
  t.equal(evicted(), 0);
  t.not(uploads.get('a'), undefined);
  t.not(uploads.get('b'), undefined);
  t.equal(uploads.bytes, 2);
  t.equal(uploads.start('a', upload(bytes(1), { reservedBytes: 1, anonymousEndpoint: 'ep-a' })), true,
    'a restart of an upload under way replaces it, also when the count is reached');
  t.equal(evicted(), 1);
  t.equal(uploads.size, 2);
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
  uploads.start('k', upload(bytes(10)));
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

t.test('expired uploads give back their reservations and their places', async (t) => {
  const { uploads, advanceMs, evicted } = assembler({ ...BUFFER, maxEntries: 2, lifetimeMs: 1000 });
  uploads.start('a', upload(bytes(100), { reservedBytes: AUTHENTICATED_SHARE }));
  uploads.start('x', upload(bytes(10), { reservedBytes: ANONYMOUS_SHARE, anonymousEndpoint: 'ep-x' }));
  t.equal(uploads.start('b', upload(bytes(1), { reservedBytes: 1 })), false, 'full while a lives');
  t.equal(uploads.start('y', upload(bytes(1), { reservedBytes: 1, anonymousEndpoint: 'ep-y' })), false, 'the eighth full while x lives');
  advanceMs(999);
  t.equal(uploads.start('b', upload(bytes(1), { reservedBytes: 1 })), false, 'still full at 999 ms');
  advanceMs(1);
  t.equal(uploads.start('b', upload(bytes(100), { reservedBytes: AUTHENTICATED_SHARE })), true, 'a expired: a full-size b fits');
  t.equal(uploads.start('y', upload(bytes(10), { reservedBytes: ANONYMOUS_SHARE, anonymousEndpoint: 'ep-y' })), true,
    'x expired: the whole eighth is free');
  t.equal(evicted(), 2, 'both expiries counted');
  t.equal(uploads.bytes, 110);
  t.equal(uploads.size, 2);
});

t.test('starting the same key again restarts it: counted as an eviction, the old bytes and reservation freed', async (t) => {
  const { uploads, evicted } = assembler(BUFFER);
  uploads.start('k', upload(bytes(60, 0x6f), { accessToken: 'old', reservedBytes: AUTHENTICATED_SHARE }));
  uploads.append('k', bytes(20, 0x6f));
  t.equal(uploads.start('k', upload(bytes(60, 0x6e), { accessToken: 'new', reservedBytes: AUTHENTICATED_SHARE })), true,
    'its own old reservation does not count against the restart');
  t.equal(evicted(), 1);
  t.equal(uploads.bytes, 60);
  t.equal(uploads.size, 1);
  t.equal(uploads.get('k')?.accessToken, 'new');
  t.ok(uploads.take('k').equals(bytes(60, 0x6e)), 'only the new block');
});

t.test('delete frees the bytes and the reservation', async (t) => {
  const { uploads } = assembler(BUFFER);
  uploads.start('a', upload(bytes(10), { reservedBytes: AUTHENTICATED_SHARE }));
  uploads.start('b', upload(bytes(20), { reservedBytes: ANONYMOUS_SHARE, anonymousEndpoint: 'ep-b' }));
  uploads.delete('a');
  t.equal(uploads.bytes, 20);
  uploads.delete('a');
  t.equal(uploads.bytes, 20, 'deleting twice is harmless');
  t.equal(uploads.start('c', upload(bytes(5), { reservedBytes: AUTHENTICATED_SHARE })), true, 'a\'s reservation is free');
  uploads.delete('b');
  t.equal(uploads.start('d', upload(bytes(5), { reservedBytes: ANONYMOUS_SHARE, anonymousEndpoint: 'ep-d' })), true, 'and b\'s');
});

t.test('clear() resets everything: bytes reported 0, and a full-size start succeeds again', async (t) => {
  const { uploads, reported, evicted } = assembler(BUFFER);
  uploads.start('a', upload(bytes(10), { reservedBytes: AUTHENTICATED_SHARE }));
  uploads.start('b', upload(bytes(20), { reservedBytes: ANONYMOUS_SHARE, anonymousEndpoint: 'ep-b' }));
  t.equal(uploads.start('c', upload(bytes(1), { reservedBytes: 1 })), false, 'full before clear()');
  uploads.clear();
  t.equal(uploads.bytes, 0);
  t.equal(uploads.size, 0);
  t.equal(reported.at(-1), 0, 'the last report is 0');
  t.equal(uploads.start('c', upload(bytes(5), { reservedBytes: AUTHENTICATED_SHARE })), true, 'the whole authenticated share is free');
  t.equal(uploads.start('d', upload(bytes(5), { reservedBytes: ANONYMOUS_SHARE, anonymousEndpoint: 'ep-b' })), true,
    'and the whole eighth');
  t.equal(evicted(), 0, 'clearing is not evicting');
  t.equal(uploads.bytes, 10);
});

t.test('take of an unknown key is an empty body and changes nothing', async (t) => {
  const { uploads } = assembler();
  uploads.start('a', upload(bytes(10)));
  t.equal(uploads.take('nope').length, 0);
  t.equal(uploads.bytes, 10);
});

t.test('one device may have four uploads under way at once: it cannot reserve the buffer for itself', async (t) => {
  const { uploads } = assembler();
  for (let i = 0; i < 4; i += 1) {
    t.equal(uploads.start(`d1-${i}`, upload(bytes(16), { reservedBytes: 64, owner: 'd1' })), true, `device d1, upload ${i + 1}`);
  }
  t.equal(uploads.start('d1-4', upload(bytes(16), { reservedBytes: 64, owner: 'd1' })), false, 'its fifth waits');
  t.equal(uploads.start('d2-0', upload(bytes(16), { reservedBytes: 64, owner: 'd2' })), true, 'another device is unaffected');
  uploads.take('d1-0');
  t.equal(uploads.start('d1-4', upload(bytes(16), { reservedBytes: 64, owner: 'd1' })), true, 'once one is done, the next fits');
  t.equal(uploads.start('d1-4', upload(bytes(16), { reservedBytes: 64, owner: 'd1' })), true, 'restarting its own upload does not count twice');
  uploads.clear();
  for (let i = 0; i < 4; i += 1) t.equal(uploads.start(`d1-${i}`, upload(bytes(16), { reservedBytes: 64, owner: 'd1' })), true, 'clear() forgets the counts');
});

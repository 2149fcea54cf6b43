import t from 'tap';
import { parse } from 'coap-packet';
import type { Peer } from '../../gateway/src/coap/peer.ts';
import { AuthError, RequestError } from '../../gateway/src/errors.ts';
import {
  ECHO, PEER_A, PEER_A_OTHER_PORT, PEER_B, block, harness, option, patterned, readUint, request, type Harness, type Sent,
} from '../helpers/endpoint-harness.ts';

// The block-wise layer (RFC 7959) through the whole stack: Block1 reassembly keyed by endpoint and
// request (never by CoAP token), admitted on block 0 before anything is buffered; Block2 served from
// the stored answer.

// ---------------------------------------------------------------------------------------------
// Block1 (RFC 7959 section 2.5), 64-byte blocks (SZX 2) unless said otherwise.

const SZX64 = 2;

interface UploadOptions { peer?: Peer; accessToken?: string | undefined; size1?: number; szx?: number; path?: string[] }

/** Block `num` of `body`, with a CoAP token and message ID of its own. */
function uploadBlock(body: Buffer, num: number, options: UploadOptions = {}): Buffer {
  const size = 1 << ((options.szx ?? SZX64) + 4);
  const payload = body.subarray(num * size, (num + 1) * size);
  const more = (num + 1) * size < body.length;
  return request({
    code: 'POST', path: options.path ?? ['readings'], contentFormat: 60, payload,
    accessToken: 'accessToken' in options ? options.accessToken : 'tok-A',
    block1: [num, more, options.szx ?? SZX64], ...(num === 0 && options.size1 !== undefined ? { size1: options.size1 } : {}),
  });
}

t.test('Block1: a refusing admit on block 0 answers its error, and nothing is buffered', async (t) => {
  const h = harness(t);
  h.handler.admitImpl = () => { throw new AuthError('GW_ERR_AUTH_TOKEN_MISSING', 'no Access-Token'); };
  const body = patterned(300);
  const refused = await h.ask(uploadBlock(body, 0, { accessToken: undefined, size1: 300 }));
  t.equal(refused.packet.code, '4.01');
  t.equal(h.handler.admitted.length, 1, 'admit ran on block 0');
  t.equal(h.handler.admitted[0]?.uploadBytesAtAdmit, 0, 'before anything was buffered');
  t.equal(h.endpoint.uploadBytes(), 0);
  t.ok(h.uploadReports.every((bytes) => bytes === 0), 'the buffer gauge never rose');
  t.equal(h.handler.handled.length, 0);
  const next = await h.ask(uploadBlock(body, 1, { accessToken: undefined }));
  t.equal(next.packet.code, '4.08', 'block 1 then finds no upload');
});

t.test('Block1: blocks with new tokens and the same Access-Token assemble; handle() gets the whole body once', async (t) => {
  const h = harness(t);
  h.handler.handleImpl = () => ({ code: '2.04' });
  const body = patterned(3 * 64 + 10);
  const replies: Sent[] = [];
  for (let num = 0; num < 4; num += 1) replies.push(await h.ask(uploadBlock(body, num, { size1: body.length })));
  t.equal(new Set(replies.map((r) => r.packet.token.toString('hex'))).size, 4, 'four blocks, four CoAP tokens');
  for (const num of [0, 1, 2]) {
    t.equal(replies[num]!.packet.code, '2.31', `block ${num}: 2.31 Continue`);
    t.same(block(replies[num]!, 'Block1'), { num, more: true, szx: SZX64 }, `block ${num}: 2.31 carries Block1`);
  }
  t.equal(replies[3]!.packet.code, '2.04', 'the final answer is the handler\'s');
  t.same(block(replies[3]!, 'Block1'), { num: 3, more: false, szx: SZX64 }, 'and carries Block1 of the last block');
  t.equal(h.handler.admitted.length, 1, 'admit once, on block 0');
  t.equal(h.handler.admitted[0]?.uploadBytesAtAdmit, 0, 'before block 0 was buffered');
  t.equal(h.handler.admitted[0]?.declaredBytes, body.length, 'with the Size1 of block 0');
  t.equal(h.handler.handled.length, 1, 'handle once');
  t.ok(h.handler.handled[0]?.payload.equals(body), 'with the whole body, in order');
  t.equal(h.handler.handled[0]?.accessToken, 'tok-A');
  t.equal(h.handler.handled[0]?.path, '/readings');
  t.equal(Math.max(...h.uploadReports), body.length, 'the gauge rose to the whole body before it was handed over');
  t.equal(h.endpoint.uploadBytes(), 0, 'and the buffer is empty afterwards');
});

t.test('Block1: two endpoints uploading to the same resource at once are assembled apart', async (t) => {
  const h = harness(t);
  h.handler.handleImpl = () => ({ code: '2.04' });
  const bodyA = patterned(150);
  const bodyB = Buffer.alloc(150, 0xbb);
  for (let num = 0; num < 3; num += 1) {
    await h.ask(uploadBlock(bodyA, num), PEER_A);
    await h.ask(uploadBlock(bodyB, num), PEER_B);
  }
  t.equal(h.handler.handled.length, 2);
  t.ok(h.handler.handled[0]?.payload.equals(bodyA), 'A got A\'s body');
  t.ok(h.handler.handled[1]?.payload.equals(bodyB), 'B got B\'s body');
});

t.test('Block1: a later block with another Access-Token gets 4.01 and the upload goes on with the right one', async (t) => {
  const h = harness(t);
  h.handler.handleImpl = () => ({ code: '2.04' });
  const body = patterned(150);
  t.equal((await h.ask(uploadBlock(body, 0))).packet.code, '2.31');
  const intruder = await h.ask(uploadBlock(body, 1, { accessToken: 'tok-other' }));
  t.equal(intruder.packet.code, '4.01');
  const missing = await h.ask(uploadBlock(body, 1, { accessToken: undefined }));
  t.equal(missing.packet.code, '4.01', 'no Access-Token at all: 4.01 too');
  t.equal((await h.ask(uploadBlock(body, 1))).packet.code, '2.31');
  t.equal((await h.ask(uploadBlock(body, 2))).packet.code, '2.04');
  t.equal(h.handler.handled.length, 1);
  t.ok(h.handler.handled[0]?.payload.equals(body));
});

t.test('Block1: an out-of-order block gets 4.08 and the upload is dropped', async (t) => {
  const h = harness(t);
  const body = patterned(64 * 4);
  t.equal((await h.ask(uploadBlock(body, 0))).packet.code, '2.31');
  t.equal((await h.ask(uploadBlock(body, 2))).packet.code, '4.08', 'block 2 after block 0');
  t.equal(h.endpoint.uploadBytes(), 0, 'its bytes freed');
  t.equal((await h.ask(uploadBlock(body, 1))).packet.code, '4.08', 'the upload is gone');
  t.equal(h.handler.handled.length, 0);
});

t.test('Block1: block N without block 0 gets 4.08, without admit or handle', async (t) => {
  const h = harness(t);
  const reply = await h.ask(uploadBlock(patterned(64 * 4), 3));
  t.equal(reply.packet.code, '4.08');
  t.equal(h.handler.admitted.length, 0);
  t.equal(h.handler.handled.length, 0);
});

t.test('Block1: Size1 above maxBodyBytes on block 0 gets what admit throws (4.13 with Size1), nothing buffered', async (t) => {
  const h = harness(t);
  h.handler.maxBodyBytes = 16_384;
  h.handler.admitImpl = (_request, declaredBytes) => {
    if (declaredBytes !== undefined && declaredBytes > 16_384) {
      throw new RequestError('GW_ERR_PAYLOAD_TOO_LARGE', 'declared too large', { size1Bytes: 16_384 });
    }
  };
  const reply = await h.ask(uploadBlock(patterned(20_000), 0, { size1: 20_000, szx: 6 }));
  t.equal(reply.packet.code, '4.13');
  t.equal(readUint(option(reply, 'Size1')), 16_384, 'Size1 says how much is accepted');
  t.equal(h.handler.admitted[0]?.declaredBytes, 20_000);
  t.equal(h.endpoint.uploadBytes(), 0);
});

t.test('Block1: an upload growing past admit\'s maxBodyBytes without Size1 gets 4.13 with Size1, and is dropped', async (t) => {
  const h = harness(t);
  h.handler.maxBodyBytes = 128;
  const body = patterned(64 * 3);
  t.equal((await h.ask(uploadBlock(body, 0))).packet.code, '2.31');
  t.equal((await h.ask(uploadBlock(body, 1))).packet.code, '2.31');
  const reply = await h.ask(uploadBlock(body, 2));
  t.equal(reply.packet.code, '4.13');
  t.equal(readUint(option(reply, 'Size1')), 128);
  t.equal(h.endpoint.uploadBytes(), 0);
  t.equal(h.handler.handled.length, 0);
});

t.test('Block1: block 0 larger than admit\'s maxBodyBytes gets 4.13 with Size1, nothing buffered', async (t) => {
  const h = harness(t);
  h.handler.maxBodyBytes = 32;
  const reply = await h.ask(uploadBlock(patterned(64 * 3), 0));
  t.equal(reply.packet.code, '4.13');
  t.equal(readUint(option(reply, 'Size1')), 32);
  t.equal(h.endpoint.uploadBytes(), 0);
  t.ok(h.uploadReports.every((bytes) => bytes === 0), 'the buffer gauge never rose');
});

t.test('Block1: a new upload gets 5.03 with Max-Age when reservations fill the buffer; the upload under way finishes', async (t) => {
  // 256 bytes: 224 for authenticated uploads, 32 for unauthenticated ones.
  const h = harness(t, { blockBufferBytes: 256 });
  h.handler.handleImpl = () => ({ code: '2.04' });
  const bodyA = patterned(64 * 3);
  const bodyB = Buffer.alloc(64 * 3, 0xbb);
  t.equal((await h.ask(uploadBlock(bodyA, 0, { size1: bodyA.length }), PEER_A)).packet.code, '2.31', 'A: 192 bytes set aside');
  const refused = await h.ask(uploadBlock(bodyB, 0, { accessToken: 'tok-B', size1: bodyB.length }), PEER_B);
  t.equal(refused.packet.code, '5.03', 'B: 192 + 192 set aside would pass 224, though only 64 bytes are buffered');
  t.equal(readUint(option(refused, 'Max-Age')), 5, 'with Max-Age');
  t.equal(h.endpoint.uploadBytes(), 64, 'A is still buffered, nothing of B');
  t.equal((await h.ask(uploadBlock(bodyA, 1), PEER_A)).packet.code, '2.31', 'A: block 1 has its room');
  t.equal((await h.ask(uploadBlock(bodyA, 2), PEER_A)).packet.code, '2.04', 'A: finished');
  t.ok(h.handler.handled[0]?.payload.equals(bodyA), 'with its whole body');
  t.same(h.evicted, [], 'nobody was pushed out');
  t.equal(h.endpoint.uploadBytes(), 0);
  t.equal((await h.ask(uploadBlock(bodyB, 0, { accessToken: 'tok-B', size1: bodyB.length }), PEER_B)).packet.code, '2.31',
    'B: room again once A is done');
});

t.test('Block1: an upload without Size1 sets aside the largest body admit allows; with Size1, only that', async (t) => {
  // 1024 bytes: 896 for authenticated uploads.
  const h = harness(t, { blockBufferBytes: 1024 });
  h.handler.maxBodyBytes = 512;
  const body = patterned(64 * 3);
  t.equal((await h.ask(uploadBlock(body, 0), PEER_A)).packet.code, '2.31', 'A: 512 set aside');
  t.equal((await h.ask(uploadBlock(body, 0, { accessToken: 'tok-B' }), PEER_B)).packet.code, '5.03', 'B without Size1: 512 more would pass 896');
  t.equal((await h.ask(uploadBlock(body, 0, { accessToken: 'tok-B', size1: body.length }), PEER_B)).packet.code, '2.31',
    'B with Size1 192: 704 fits');
  t.equal(h.endpoint.uploadBytes(), 128);
});

t.test('Block1: a body passing its own Size1 gets 4.00 and the upload is dropped', async (t) => {
  const h = harness(t);
  const body = patterned(64 * 3);
  t.equal((await h.ask(uploadBlock(body, 0, { size1: 100 }))).packet.code, '2.31', 'block 0: 64 of the 100 announced');
  t.equal((await h.ask(uploadBlock(body, 1))).packet.code, '4.00', 'block 1: 128 bytes, more than the device announced');
  t.equal(h.endpoint.uploadBytes(), 0, 'its bytes freed');
  t.equal((await h.ask(uploadBlock(body, 2))).packet.code, '4.08', 'the upload is gone');
  t.equal(h.handler.handled.length, 0);
  t.same(h.evicted, [], 'not an eviction');
});

t.test('Block1: a Size1 smaller than block 0 cannot make the buffer pass its bound', async (t) => {
  // 8192 bytes, 1024 of them for unauthenticated uploads; every peer announces 1 byte and sends 1024.
  const h = harness(t, { blockBufferBytes: 8192 });
  const body = patterned(2048);
  const peer = (n: number): Peer => ({ address: '198.51.100.7', port: 30_000 + n });
  h.handler.authenticated = () => false;
  for (let n = 0; n < 20; n += 1) await h.ask(uploadBlock(body, 0, { accessToken: undefined, size1: 1, szx: 6 }), peer(n));
  t.ok(h.endpoint.uploadBytes() <= 1024, `unauthenticated uploads buffer at most an eighth: ${h.endpoint.uploadBytes()} <= 1024 bytes`);
  h.handler.authenticated = () => true;
  for (let n = 20; n < 40; n += 1) await h.ask(uploadBlock(body, 0, { size1: 1, szx: 6 }), peer(n));
  t.ok(h.endpoint.uploadBytes() <= 8192, `all uploads buffer at most blockBufferBytes: ${h.endpoint.uploadBytes()} <= 8192 bytes`);
});

t.test('Block1: an anonymous upload cannot take the room of an authenticated upload from another peer', async (t) => {
  // 1024 bytes: 128 for unauthenticated uploads (logins), 896 for authenticated ones.
  const h = harness(t, { blockBufferBytes: 1024 });
  h.handler.authenticated = (req) => req.accessToken !== undefined;
  h.handler.handleImpl = (req) => ({ code: req.accessToken === undefined ? '2.01' : '2.04' });
  const login = patterned(128);
  const greedy = await h.ask(uploadBlock(patterned(1024), 0, { path: ['auth'], accessToken: undefined, size1: 1024 }), PEER_B);
  t.equal(greedy.packet.code, '5.03', 'an anonymous upload announcing the whole buffer is refused, the buffer empty');
  t.equal(readUint(option(greedy, 'Max-Age')), 5, 'with Max-Age');
  t.equal((await h.ask(uploadBlock(login, 0, { path: ['auth'], accessToken: undefined, size1: login.length }), PEER_B)).packet.code, '2.31',
    'B: an anonymous upload within the eighth');
  t.equal((await h.ask(uploadBlock(login, 0, { path: ['auth'], accessToken: undefined, size1: 128 }), PEER_A_OTHER_PORT)).packet.code,
    '5.03', 'another anonymous peer: the eighth is taken');
  const body = patterned(896);
  const codes: string[] = [];
  for (let num = 0; num < 14; num += 1) codes.push((await h.ask(uploadBlock(body, num, { size1: body.length }), PEER_A)).packet.code);
  t.same(codes, [...Array<string>(13).fill('2.31'), '2.04'], 'A: all seven eighths set aside and used, beside the anonymous upload');
  t.ok(h.handler.handled.at(-1)?.payload.equals(body), 'A got its whole body');
  t.equal((await h.ask(uploadBlock(login, 1, { path: ['auth'], accessToken: undefined }), PEER_B)).packet.code, '2.01',
    'B\'s anonymous upload finishes too');
  t.ok(h.handler.handled.at(-1)?.payload.equals(login));
  t.same(h.evicted, []);
  t.equal(h.endpoint.uploadBytes(), 0);
});

t.test('Block1: anonymous uploads never evict one under way: a newcomer waits (5.03) while the eighth is full', async (t) => {
  // 2048 bytes: 256 for unauthenticated uploads, room for two of 128.
  const h = harness(t, { blockBufferBytes: 2048 });
  h.handler.authenticated = () => false;
  h.handler.handleImpl = () => ({ code: '2.01' });
  const first = Buffer.alloc(128, 0x31);
  const second = Buffer.alloc(128, 0x32);
  const other = Buffer.alloc(128, 0x33);
  const anonymous = (body: Buffer, num: number, path: string[]) =>
    uploadBlock(body, num, { path, accessToken: undefined, ...(num === 0 ? { size1: body.length } : {}) });
  t.equal((await h.ask(anonymous(first, 0, ['auth']), PEER_B)).packet.code, '2.31', 'B: first upload');
  t.equal((await h.ask(anonymous(other, 0, ['auth']), PEER_A_OTHER_PORT)).packet.code, '2.31', 'another peer: the eighth now full');
  t.equal((await h.ask(anonymous(second, 0, ['refresh']), PEER_B)).packet.code, '5.03', 'B: a second upload waits');
  t.same(h.evicted, [], 'nothing under way was evicted (another host may share an address)');
  t.equal((await h.ask(anonymous(first, 1, ['auth']), PEER_B)).packet.code, '2.01', 'the first upload finishes');
  t.equal((await h.ask(anonymous(other, 1, ['auth']), PEER_A_OTHER_PORT)).packet.code, '2.01', 'the other peer\'s upload finishes');
  t.equal((await h.ask(anonymous(second, 0, ['refresh']), PEER_B)).packet.code, '2.31', 'now B\'s second upload fits');
  t.equal((await h.ask(anonymous(second, 1, ['refresh']), PEER_B)).packet.code, '2.01');
  t.same(h.handler.handled.map((req) => [req.path, req.payload.toString()]),
    [['/auth', first.toString()], ['/auth', other.toString()], ['/refresh', second.toString()]], 'each with its own body');
});

t.test('Block1: SZX 7 (BERT) is refused with 4.02 on UDP', async (t) => {
  const h = harness(t);
  const reply = await h.ask(request({ code: 'POST', path: ['readings'], payload: Buffer.alloc(16), block1: [0, true, 7] }));
  t.equal(reply.packet.code, '4.02');
  t.equal(h.endpoint.uploadBytes(), 0);
});

t.test('Block1: a single block (block 0, M=0) is handled at once and answered with its Block1', async (t) => {
  const h = harness(t);
  h.handler.handleImpl = () => ({ code: '2.04' });
  const reply = await h.ask(uploadBlock(patterned(40), 0));
  t.equal(reply.packet.code, '2.04');
  t.same(block(reply, 'Block1'), { num: 0, more: false, szx: SZX64 });
  t.equal(h.handler.handled[0]?.payload.length, 40);
});

// ---------------------------------------------------------------------------------------------
// Block2 (RFC 7959 section 2.4)

function bigAnswer(h: Harness, size: number): Buffer {
  const body = patterned(size);
  h.handler.handleImpl = () => ({ code: '2.05', payload: body, contentFormat: 60 });
  return body;
}

const getBlock = (num: number | undefined, options: { szx?: number; accessToken?: string; size2?: boolean } = {}) => request({
  path: ['big'], accessToken: options.accessToken ?? 'tok-A', size2: options.size2,
  ...(num === undefined ? {} : { block2: [num, false, options.szx ?? 6] as [number, boolean, number] }),
});

t.test('Block2: a 5000-byte answer goes in 1024-byte blocks with an ETag; later blocks do not call handle()', async (t) => {
  const h = harness(t);
  const body = bigAnswer(h, 5000);
  const first = await h.ask(getBlock(undefined));
  t.equal(first.packet.code, '2.05');
  t.same(block(first, 'Block2'), { num: 0, more: true, szx: 6 });
  t.equal(first.packet.payload.length, 1024);
  const etag = option(first, 'ETag');
  t.equal(etag?.length, 8, 'an 8-byte ETag');
  t.equal(readUint(option(first, 'Content-Format')), 60, 'with the Content-Format');
  t.equal(option(first, 'Size2'), undefined, 'no Size2 unless asked');
  const parts = [first.packet.payload];
  for (let num = 1; num <= 4; num += 1) {
    const datagram = getBlock(num);
    const reply = await h.ask(datagram);
    t.equal(reply.packet.token.toString('hex'), parse(datagram).token.toString('hex'), `block ${num}: answers its own CoAP token`);
    t.same(block(reply, 'Block2'), { num, more: num < 4, szx: 6 }, `block ${num}: Block2`);
    t.ok(option(reply, 'ETag')?.equals(etag!), `block ${num}: the same ETag`);
    parts.push(reply.packet.payload);
  }
  t.equal(parts[4]?.length, 5000 - 4 * 1024, 'the last block is the rest');
  t.ok(Buffer.concat(parts).equals(body), 'the blocks make the answer');
  t.equal(h.handler.handled.length, 1, 'handle() once for five blocks');
});

t.test('Block2: Size2 is returned when the request carries Size2', async (t) => {
  const h = harness(t);
  bigAnswer(h, 5000);
  const first = await h.ask(getBlock(undefined, { size2: true }));
  t.equal(readUint(option(first, 'Size2')), 5000);
  const later = await h.ask(getBlock(2, { size2: true }));
  t.equal(readUint(option(later, 'Size2')), 5000, 'on a stored block too');
  const without = await h.ask(getBlock(3));
  t.equal(option(without, 'Size2'), undefined, 'not when not asked');
});

t.test('Block2: the device\'s SZX 2 (64-byte blocks) is honoured', async (t) => {
  const h = harness(t);
  const body = bigAnswer(h, 5000);
  const first = await h.ask(getBlock(0, { szx: 2 }));
  t.same(block(first, 'Block2'), { num: 0, more: true, szx: 2 });
  t.ok(first.packet.payload.equals(body.subarray(0, 64)));
  const second = await h.ask(getBlock(1, { szx: 2 }));
  t.same(block(second, 'Block2'), { num: 1, more: true, szx: 2 });
  t.ok(second.packet.payload.equals(body.subarray(64, 128)));
  t.equal(h.handler.handled.length, 1);
});

t.test('Block2: a later block with another Access-Token is not served from the stored answer', async (t) => {
  const h = harness(t);
  bigAnswer(h, 5000);
  await h.ask(getBlock(undefined));
  await h.ask(getBlock(1, { accessToken: 'tok-other' }));
  t.equal(h.handler.handled.length, 2, 'the other token went through the handler');
});

t.test('Block2: an answer that fits one block is sent whole, without Block2 or ETag', async (t) => {
  const h = harness(t);
  const body = bigAnswer(h, 1000);
  const reply = await h.ask(getBlock(undefined));
  t.ok(reply.packet.payload.equals(body));
  t.equal(option(reply, 'Block2'), undefined);
  t.equal(option(reply, 'ETag'), undefined);
});

t.test('Block2: a tokenless request gets 4.01 with Echo for every block, and the blocks with the Echo value', async (t) => {
  const h = harness(t);
  const body = bigAnswer(h, 3000);
  // A path long enough that the 4.01 has room for its Echo option.
  const tokenless = (num: number | undefined, extra: [number, Buffer][] = []) => request({
    path: ['big', 'readings'], extra, ...(num === undefined ? {} : { block2: [num, false, 6] as [number, boolean, number] }),
  });
  const challenge = await h.ask(tokenless(undefined));
  t.equal(challenge.packet.code, '4.01');
  const echo = option(challenge, String(ECHO));
  if (echo === undefined) {
    t.fail('the 4.01 carries an Echo option');
    return;
  }
  t.equal((await h.ask(tokenless(1))).packet.code, '4.01', 'a later block without the Echo value: 4.01 too');
  const parts: Buffer[] = [];
  for (let num = 0; num < 3; num += 1) {
    const reply = await h.ask(tokenless(num, [[ECHO, echo]]));
    t.same(block(reply, 'Block2'), { num, more: num < 2, szx: 6 }, `block ${num} with the Echo value`);
    parts.push(reply.packet.payload);
  }
  t.ok(Buffer.concat(parts).equals(body), 'the blocks make the answer');
});


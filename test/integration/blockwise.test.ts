import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Decoder, Encoder } from 'cbor-x';
import t, { type Test } from 'tap';
import { ACCESS_TOKEN_OPTION } from '../../gateway/src/wire/index.ts';
import { plain } from '../helpers/bridge-fixtures.ts';
import { RawCoapClient, isAnswerTo, loginToken, rawRequest } from '../helpers/bridge-raw-coap.ts';
import { metricValue, optionValues, readBlockOption, readUintOption, blockValue } from '../helpers/coap-wire.ts';
import { startHarness, type Harness } from '../helpers/harness.ts';
import { libcoap, libcoapBlock, libcoapUint, requireLibcoap } from '../helpers/libcoap-client.ts';
import { nodeCoapRequest, openNodeCoapAgent } from '../helpers/node-coap-blockwise.ts';
import { rawUpload, sendBlock1 } from '../helpers/raw-blockwise.ts';
import type { BackendHandler } from '../helpers/test-backend.ts';

// RFC 7959 block-wise transfer through the gateway's own endpoint, driven by two independent
// clients (libcoap's C client and node-coap) and by raw datagrams where a client cannot be made
// to misbehave. Uploads are JSON (Content-Format 50), which a cbor-json route passes to the
// backend byte for byte, so the backend's body can be compared by hash with what was sent.

const cbor = new Decoder({ mapsAsObjects: false, useRecords: false });
const GAUGE = 'coap_gateway_block_buffer_bytes';
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** A JSON document of at least `bytes` bytes, its content tied to `label` so no two uploads are alike. */
function jsonDocument(bytes: number, label: string): Buffer {
  const samples: { i: number; celsius: number; label: string }[] = [];
  let text = '';
  while (text.length < bytes) {
    samples.push({ i: samples.length, celsius: Math.round(Math.sin(samples.length) * 400) / 10, label });
    text = JSON.stringify({ device: label, samples });
  }
  return Buffer.from(text);
}

async function tempFile(t: Test, name: string, content: Buffer): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gw-blockwise-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, name);
  await writeFile(file, content);
  return file;
}

/** The backend's last request carried exactly `body`, as JSON, to the device's telemetry path. */
function checkArrivedWhole(t: Test, h: Harness, before: number, body: Buffer, what: string): void {
  t.equal(h.backend.requests.length, before + 1, `${what}: one backend request for the whole upload`);
  const got = h.backend.requests.at(-1);
  t.equal(got?.url, '/devices/sensor-1/telemetry/temp', `${what}: to the device's telemetry path`);
  t.equal(got?.headers['content-type'], 'application/json', `${what}: as JSON`);
  t.equal(got?.body.length, body.length, `${what}: ${body.length} bytes arrived`);
  t.equal(sha256(got?.body ?? Buffer.alloc(0)), sha256(body), `${what}: the SHA-256 of what arrived is that of what was sent`);
}

const UPLOADS: [label: string, bytes: number][] = [['3 KB', 3 * 1024], ['20 KB', 20 * 1024]];

t.test('libcoap: Block1 uploads of 3 KB and 20 KB with -b 1024 and -b 64 reach the backend whole', async (t) => {
  if (!(await requireLibcoap(t))) return;
  const h = await startHarness(t, { config: { maxPayloadBytes: 32768 } });
  const token = await loginToken(h, 'sensor-1');
  for (const [label, bytes] of UPLOADS) {
    for (const blockSize of [1024, 64]) {
      const what = `${label}, -b ${blockSize}`;
      const body = jsonDocument(bytes, what);
      const file = await tempFile(t, 'upload.json', body);
      const before = h.backend.requests.length;
      const run = await libcoap(t, `coap://127.0.0.1:${h.port}/telemetry/temp`,
        ['-m', 'post', '-t', '50', '-b', String(blockSize), '-f', file, '-O', `${ACCESS_TOKEN_OPTION},${token}`]);
      t.equal(run.answer.code, '2.01', `${what}: 2.01 Created`);
      const last = libcoapBlock(run.answer, 'Block1');
      const continues = run.pdus.filter((p) => p.code === '2.31');
      // libcoap picks the largest size up to -b that fits 1152 bytes with the 372-byte token: 512 for -b 1024.
      t.ok(last !== undefined && !last.more, `${what}: the final answer carries Block1 of the last block (${run.answer.options})`);
      t.equal(continues.length, Math.ceil(body.length / (last?.size ?? 1)) - 1, `${what}: 2.31 Continue for every block but the last`);
      t.equal(last?.num, continues.length, `${what}: the final Block1 names the last block`);
      const tokens = new Set(run.pdus.filter((p) => p.code === 'POST').map((p) => p.token));
      t.ok(tokens.size > 1, `${what}: libcoap used ${tokens.size} CoAP tokens for one upload, as RFC 7959 section 2.5 allows`);
      checkArrivedWhole(t, h, before, body, what);
      t.comment(`${what}: ${body.length} bytes in ${continues.length + 1} blocks of ${last?.size} bytes`);
    }
  }
  t.equal(await metricValue(h, GAUGE), 0, 'nothing left buffered');
});

t.test('libcoap: a CBOR upload (-t 60) in 64-byte blocks reaches the backend as the same values in JSON', async (t) => {
  if (!(await requireLibcoap(t))) return;
  const h = await startHarness(t, { config: { maxPayloadBytes: 32768 } });
  const token = await loginToken(h, 'sensor-1');
  const document = JSON.parse(jsonDocument(3 * 1024, 'cbor').toString('utf8')) as unknown;
  const file = await tempFile(t, 'upload.cbor', new Encoder({ useRecords: false }).encode(document));
  const run = await libcoap(t, `coap://127.0.0.1:${h.port}/telemetry/temp`,
    ['-m', 'post', '-t', '60', '-b', '64', '-f', file, '-O', `${ACCESS_TOKEN_OPTION},${token}`]);
  t.equal(run.answer.code, '2.01');
  t.equal(h.backend.requests.length, 1, 'one backend request');
  t.strictSame(JSON.parse(h.backend.requests[0]!.body.toString('utf8')), document, 'the backend got the same values');
});

t.test('node-coap: Block1 uploads of 3 KB and 20 KB in 512- and 64-byte blocks reach the backend whole', async (t) => {
  const h = await startHarness(t, { config: { maxPayloadBytes: 32768 } });
  const token = await loginToken(h, 'sensor-1');
  const agent = await openNodeCoapAgent(t);
  // node-coap caps a message at 1280 bytes: with the 372-byte token, 1024-byte blocks cannot be sent (SZX 6).
  for (const [label, bytes] of UPLOADS) {
    for (const szx of [5, 2]) {
      const what = `${label}, SZX ${szx} (${1 << (szx + 4)} bytes)`;
      const body = jsonDocument(bytes, what);
      const before = h.backend.requests.length;
      const answer = await nodeCoapRequest(agent, h.port, {
        method: 'POST', path: '/telemetry/temp', accessToken: token, contentFormat: 50, payload: body, block1Szx: szx,
      });
      t.equal(answer.code, '2.01', `${what}: 2.01 Created`);
      checkArrivedWhole(t, h, before, body, what);
    }
  }
  t.equal(await metricValue(h, GAUGE), 0, 'nothing left buffered');
});

/** The backend answers GET .../config with a 5 KB JSON document, with an ETag when asked to. */
function bigConfig(h: Harness, etag?: string): Buffer {
  const document = jsonDocument(5 * 1024, 'config');
  const handler: BackendHandler = (req, res) => {
    if (req.method !== 'GET' || !req.url.endsWith('/config')) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/json', ...(etag === undefined ? {} : { etag }) }).end(document);
  };
  h.backend.setHandler(handler);
  return document;
}

t.test('a 5 KB answer arrives through Block2 with one backend call (libcoap and node-coap)', async (t) => {
  const h = await startHarness(t);
  const token = await loginToken(h, 'sensor-1');
  const document = bigConfig(h);
  const check = (payload: Buffer, before: number, what: string) => {
    t.equal(payload.length, document.length, `${what}: ${document.length} bytes`);
    t.equal(sha256(payload), sha256(document), `${what}: the same bytes as the backend's answer`);
    t.equal(h.backend.requests.length, before + 1, `${what}: one backend call for every block`);
  };
  if (await requireLibcoap(t)) {
    for (const args of [[], ['-b', '64']]) {
      const what = `libcoap ${args.join(' ') || '(the gateway chooses)'}`;
      const before = h.backend.requests.length;
      // Accept 50: the backend's JSON as it is, so bytes can be compared.
      const run = await libcoap(t, `coap://127.0.0.1:${h.port}/config`, ['-A', '50', ...args, '-O', `${ACCESS_TOKEN_OPTION},${token}`]);
      t.equal(run.answer.code, '2.05', `${what}: 2.05`);
      const last = libcoapBlock(run.answer, 'Block2');
      t.ok(last !== undefined && !last.more && last.num > 0, `${what}: answered in ${(last?.num ?? 0) + 1} blocks of ${last?.size}`);
      check(run.payload, before, what);
    }
  }
  const agent = await openNodeCoapAgent(t);
  for (const szx of [undefined, 2]) {
    const what = `node-coap${szx === undefined ? '' : `, Block2 SZX ${szx}`}`;
    const before = h.backend.requests.length;
    const answer = await nodeCoapRequest(agent, h.port, { path: '/config', accessToken: token, accept: 50, block2Szx: szx });
    t.equal(answer.code, '2.05', `${what}: 2.05`);
    check(answer.payload, before, what);
  }
  // Without Accept the JSON becomes CBOR (smaller, still more than one block): the same values.
  const before = h.backend.requests.length;
  const answer = await nodeCoapRequest(agent, h.port, { path: '/config', accessToken: token, block2Szx: 4 });
  t.equal(answer.code, '2.05', 'CBOR: 2.05');
  t.strictSame(plain(cbor.decode(answer.payload)), JSON.parse(document.toString('utf8')), 'CBOR: the same values');
  t.equal(h.backend.requests.length, before + 1, 'CBOR: one backend call');
});

t.test('raw Block2: every block carries the same ETag, whatever token asks, and the backend is called once', async (t) => {
  const h = await startHarness(t);
  const token = await loginToken(h, 'sensor-1');
  const document = bigConfig(h);
  const client = await RawCoapClient.open(t, h.port);
  const parts: Buffer[] = [];
  const etags = new Set<string>();
  for (let num = 0; ; num += 1) {
    const coapToken = Buffer.from([0xb2, num]);
    await client.send(rawRequest({
      path: ['config'], accessToken: token, messageId: 0x100 + num, token: coapToken,
      extraOptions: [{ name: 'Accept', value: Buffer.from([50]) }, { name: 'Block2', value: blockValue(num, false, 4) },
        { name: 'Size2', value: Buffer.alloc(0) }],
    }));
    const answer = await client.next(isAnswerTo(coapToken), `block ${num}`);
    t.equal(answer.code, '2.05', `block ${num}: 2.05`);
    const block = readBlockOption(answer, 'Block2');
    t.same({ num: block?.num, szx: block?.szx }, { num, szx: 4 }, `block ${num}: Block2 ${num}, 256 bytes`);
    for (const etag of optionValues(answer, 'ETag')) etags.add(etag.toString('hex'));
    if (num === 0) t.equal(readUintOption(answer, 'Size2'), document.length, 'Size2, when asked, is the whole size');
    parts.push(answer.payload);
    if (block?.more !== true || num > 40) break;
  }
  t.equal(sha256(Buffer.concat(parts)), sha256(document), `${parts.length} blocks make the backend's answer`);
  t.equal(etags.size, 1, 'one ETag on every block');
  t.equal(h.backend.requests.length, 1, 'one backend call');
});

interface Refusal { what: string; path: string[]; accessToken?: string; contentFormat?: number; method?: 'PUT'; code: string }

t.test('Block1 refused on block 0 (4.01 no token, 4.01 bad token, 4.04 wrong route...): nothing buffered, backend untouched', async (t) => {
  const h = await startHarness(t, { config: { maxPayloadBytes: 32768 } });
  const token = await loginToken(h, 'sensor-1');
  const readOnly = await loginToken(h, 'reader-1', ['config:read']);
  const client = await RawCoapClient.open(t, h.port);
  const refusals: Refusal[] = [
    { what: 'no token', path: ['telemetry', 'temp'], code: '4.01' },
    { what: 'a bad token', path: ['telemetry', 'temp'], accessToken: `${token.slice(0, -8)}AAAAAAAA`, code: '4.01' },
    { what: 'garbage for a token', path: ['telemetry', 'temp'], accessToken: 'not-a-token', code: '4.01' },
    { what: 'a wrong route', path: ['nonexistent'], accessToken: token, code: '4.04' },
    // 4.01 before 4.04: without a valid token, nobody can probe for paths.
    { what: 'a wrong route and no token', path: ['nonexistent'], code: '4.01' },
    { what: 'a route the token has no scope for', path: ['telemetry', 'temp'], accessToken: readOnly, code: '4.03' },
    { what: 'a method the route does not take', path: ['config'], accessToken: token, method: 'PUT', code: '4.05' },
    { what: 'a content format the route does not take', path: ['telemetry', 'temp'], accessToken: token, contentFormat: 42, code: '4.15' },
  ];
  let messageId = 0x200;
  for (const r of refusals) {
    const first = await sendBlock1(client, {
      ...r, num: 0, more: true, szx: 5, payload: Buffer.alloc(512, 0x20), size1: 3072, messageId: messageId++,
    });
    t.equal(first.code, r.code, `${r.what}: ${r.code} on block 0`);
    t.equal(await metricValue(h, GAUGE), 0, `${r.what}: the buffer gauge stays 0`);
    // Had block 0 been kept, block 1 would continue it; instead there is no upload to continue.
    const second = await sendBlock1(client, { ...r, num: 1, more: false, szx: 5, payload: Buffer.from('{}'), messageId: messageId++ });
    t.not(second.code, '2.31', `${r.what}: block 1 continues nothing (${second.code})`);
  }
  t.equal(h.backend.requests.length, 0, 'the backend saw nothing');
  if (await requireLibcoap(t)) {
    const file = await tempFile(t, 'upload.json', jsonDocument(3 * 1024, 'refused'));
    for (const [what, path, args, code] of [
      ['no token', '/telemetry/temp', [], '4.01'],
      ['a bad token', '/telemetry/temp', ['-O', `${ACCESS_TOKEN_OPTION},${token.slice(0, -8)}AAAAAAAA`], '4.01'],
      ['a wrong route', '/nonexistent', ['-O', `${ACCESS_TOKEN_OPTION},${token}`], '4.04'],
    ] as const) {
      const run = await libcoap(t, `coap://127.0.0.1:${h.port}${path}`, ['-m', 'post', '-t', '50', '-b', '64', '-f', file, ...args]);
      t.equal(run.answer.code, code, `libcoap, ${what}: ${code}`);
      t.equal(run.pdus.filter((p) => p.code === '2.31').length, 0, `libcoap, ${what}: refused on block 0, no 2.31`);
    }
    t.equal(h.backend.requests.length, 0, 'the backend saw nothing from libcoap either');
  }
  t.equal(await metricValue(h, GAUGE), 0, 'the buffer gauge is 0');
  await h.assertStillServes(t);
});

t.test('a flood of 2,000 unauthenticated blocks buffers nothing', async (t) => {
  const h = await startHarness(t);
  const client = await RawCoapClient.open(t, h.port);
  const codes = new Map<string, number>();
  for (let i = 0; i < 2000; i += 1) {
    const answer = await sendBlock1(client, {
      path: ['telemetry', `t${i % 50}`], num: i % 40, more: true, szx: 6, payload: Buffer.alloc(1024, i), messageId: 0x1000 + i,
    });
    codes.set(answer.code, (codes.get(answer.code) ?? 0) + 1);
  }
  t.notOk(codes.has('2.31'), `2,000 tokenless blocks, none continued: ${JSON.stringify(Object.fromEntries(codes))}`);
  t.equal(await metricValue(h, GAUGE), 0, 'the buffer gauge stays 0');
  t.equal(h.backend.requests.length, 0, 'the backend saw nothing');
  await h.assertStillServes(t);
});

t.test('past blockBufferBytes new uploads get 5.03 with Max-Age; admitted ones complete; abandoned ones expire', async (t) => {
  // Each upload sets aside room for its whole body when it starts (Size1 515 here), and
  // authenticated uploads may use seven eighths of blockBufferBytes: 2400 -> 2100 bytes, room for
  // four uploads of 515 bytes; the fifth must wait.
  const h = await startHarness(t, { config: { blockBufferBytes: 2400, maxPayloadBytes: 1024 } });
  const token = await loginToken(h, 'sensor-1');
  const client = await RawCoapClient.open(t, h.port);

  // (512-byte blocks: what fits 1152 bytes with the 372-byte token, as libcoap chooses.)
  const firstBlock = (name: string, messageId: number) => sendBlock1(client, {
    path: ['telemetry', name], accessToken: token, num: 0, more: true, szx: 5, payload: Buffer.alloc(512, 0x20), messageId,
    extraOptions: [{ name: 'Size1', value: Buffer.from([0x02, 0x03]) }],
  });
  const started = [];
  for (const name of ['a', 'b', 'c', 'd', 'e']) started.push(await firstBlock(name, 0x2000 + started.length));
  t.same(started.map((a) => a.code), ['2.31', '2.31', '2.31', '2.31', '5.03'], 'four uploads buffered, the fifth refused');
  t.ok((readUintOption(started[4]!, 'Max-Age') ?? 0) > 0, '5.03 says when to come back (Max-Age)');
  t.equal(await metricValue(h, GAUGE), 2048, 'the gauge shows the bytes buffered: four first blocks');
  const done = await sendBlock1(client, {
    path: ['telemetry', 'a'], accessToken: token, num: 1, more: false, szx: 5, payload: Buffer.from('   '), messageId: 0x2100,
  });
  // Past the cap, *new* uploads get 5.03; one admitted on block 0 is not pushed out half-way.
  t.equal(done.code, '2.01', 'an upload admitted before the buffer filled still completes');
  t.equal(h.backend.requests.at(-1)?.body.length, 515, 'and reaches the backend whole');
  t.equal(await metricValue(h, GAUGE), 1536, 'its bytes are released');
  // blockLifetimeSec (60 s default): abandoned uploads are dropped, counted as evictions.
  h.clock.advanceSec(61);
  t.equal((await firstBlock('e', 0x2200)).code, '2.31', 'after the lifetime, a new upload fits');
  t.equal(await metricValue(h, GAUGE), 512, 'the three abandoned uploads are gone');
  t.equal(await metricValue(h, 'coap_gateway_evictions_total', { table: 'uploads' }), 3, 'counted as evictions from the uploads table');
  await h.assertStillServes(t);
});

t.test('Block1 to /auth (no token to ask for): held to the login body limit and content format from block 0', async (t) => {
  const h = await startHarness(t);
  const client = await RawCoapClient.open(t, h.port);
  const login = { path: ['auth'], contentFormat: 60, szx: 5 };
  const declared = await rawUpload(client, { ...login, body: Buffer.alloc(8000, 0xa0), size1: 8000, messageId: 0x800 });
  t.same(declared.map((a) => a.code), ['4.13'], 'Size1 8000 on block 0: 4.13 at once');
  t.equal(readUintOption(declared[0]!, 'Size1'), 4096, 'with Size1 4096, the login body limit');
  // pipeline.ts: "Login bodies are a device id and a secret or an assertion: a few hundred bytes" (MAX_AUTH_BODY_BYTES 4096).
  const undeclared = await rawUpload(client, { ...login, body: Buffer.alloc(8000, 0xa0), messageId: 0x900 });
  const refusedAt = undeclared.findIndex((a) => a.code !== '2.31');
  t.ok(refusedAt !== -1 && refusedAt <= 8, `without Size1: refused by the block that passes 4096 bytes (answers: ${undeclared.map((a) => a.code).join(' ')})`);
  t.equal(undeclared[refusedAt]?.code, '4.13', 'with 4.13');
  const json = await sendBlock1(client, { ...login, contentFormat: 50, num: 0, more: true, payload: Buffer.alloc(512, 0x20), messageId: 0xa00 });
  t.equal(json.code, '4.15', 'a JSON body (login takes CBOR) is refused on block 0, before anything is buffered');
  t.equal(h.backend.requests.length, 0, 'the backend saw nothing');
  await h.assertStillServes(t);
});

t.test('unauthenticated Block1 uploads to /auth from one socket cannot take the buffer from authenticated devices', async (t) => {
  // 64 KiB: unauthenticated uploads share an eighth (8 KiB: room for two 4 KiB login bodies).
  const h = await startHarness(t, { config: { blockBufferBytes: 65536 } });
  const token = await loginToken(h, 'sensor-1');
  const client = await RawCoapClient.open(t, h.port);
  const login = { path: ['auth'], contentFormat: 60, szx: 5 };
  // One socket, many request keys (a Request-Tag each, RFC 9175): unauthenticated blocks only.
  const flood = [];
  for (let i = 0; i < 32; i += 1) {
    flood.push((await sendBlock1(client, {
      ...login, num: 0, more: true, payload: Buffer.alloc(512, 0xa0), messageId: 0xb00 + i,
      extraOptions: [{ name: '292', value: Buffer.from([i]) }],
    })).code);
  }
  const gauge = await metricValue(h, GAUGE);
  t.same(flood, ['2.31', '2.31', ...Array(30).fill('5.03')], 'two fit the eighth; the rest wait (nothing under way is evicted)');
  t.equal(gauge, 1024, 'two first blocks buffered');
  const device = await sendBlock1(client, {
    path: ['telemetry', 'temp'], accessToken: token, num: 0, more: true, szx: 5, payload: Buffer.alloc(512, 0x20), messageId: 0xc00,
  });
  t.equal(device.code, '2.31', 'an authenticated device\'s upload still gets buffer space after an unauthenticated flood');
  await h.assertStillServes(t);
});

t.test('20 KB announced by Size1 on block 0 gets 4.13 with Size1 16384 at once; undeclared, at the block that passes the limit', async (t) => {
  const h = await startHarness(t);
  const token = await loginToken(h, 'sensor-1');
  const client = await RawCoapClient.open(t, h.port);
  const body = jsonDocument(20 * 1024, 'too big');
  const declared = await rawUpload(client, { path: ['telemetry', 'temp'], accessToken: token, body, szx: 5, size1: 20480, messageId: 0x300 });
  t.equal(declared.length, 1, 'refused on block 0');
  t.equal(declared[0]!.code, '4.13', '4.13 Request Entity Too Large');
  t.equal(readUintOption(declared[0]!, 'Size1'), 16384, 'Size1 says the largest body taken (maxPayloadBytes)');
  t.equal(await metricValue(h, GAUGE), 0, 'nothing buffered');

  const undeclared = await rawUpload(client, { path: ['telemetry', 'temp'], accessToken: token, body, szx: 5, messageId: 0x400 });
  t.same(undeclared.map((a) => a.code), [...Array(32).fill('2.31'), '4.13'], 'without Size1: 32 blocks of 512 taken, the 33rd refused');
  t.equal(readUintOption(undeclared.at(-1)!, 'Size1'), 16384, 'with Size1');
  t.equal(await metricValue(h, GAUGE), 0, 'and the 16 KiB buffered are released');
  if (await requireLibcoap(t)) {
    const file = await tempFile(t, 'big.json', body);
    const run = await libcoap(t, `coap://127.0.0.1:${h.port}/telemetry/temp`,
      ['-m', 'post', '-t', '50', '-b', '1024', '-f', file, '-O', `${ACCESS_TOKEN_OPTION},${token}`]);
    t.equal(run.answer.code, '4.13', 'libcoap (which sends Size1 on block 0): 4.13');
    t.equal(libcoapUint(run.answer, 'Size1'), 16384, 'libcoap reads Size1 16384');
    t.equal(run.pdus.filter((p) => p.code === '2.31').length, 0, 'libcoap: refused on block 0');
  }
  t.equal(h.backend.requests.length, 0, 'the backend saw nothing');
  await h.assertStillServes(t);
});

t.test('a block out of order, or of an upload that never started, gets 4.08 and frees the upload', async (t) => {
  const h = await startHarness(t);
  const token = await loginToken(h, 'sensor-1');
  const client = await RawCoapClient.open(t, h.port);
  const block = (num: number, more: boolean, messageId: number) => sendBlock1(client, {
    path: ['telemetry', 'temp'], accessToken: token, num, more, szx: 2, payload: Buffer.alloc(more ? 64 : 10, 0x20), messageId,
  });
  t.equal((await block(3, true, 0x500)).code, '4.08', 'block 3 of nothing: 4.08');
  t.equal((await block(0, true, 0x501)).code, '2.31', 'block 0: 2.31');
  t.equal((await block(1, true, 0x502)).code, '2.31', 'block 1: 2.31');
  t.equal(await metricValue(h, GAUGE), 128, '128 bytes buffered');
  t.equal((await block(3, true, 0x503)).code, '4.08', 'block 3 after block 1 (2 missing): 4.08 Request Entity Incomplete');
  t.equal(await metricValue(h, GAUGE), 0, 'the broken upload is dropped');
  t.equal((await block(2, false, 0x504)).code, '4.08', 'and cannot be resumed');
  t.equal(h.backend.requests.length, 0, 'the backend saw nothing');
  await h.assertStillServes(t);
});

t.test('a retransmitted block (same message ID) gets the same answer and is not appended twice', async (t) => {
  const h = await startHarness(t);
  const token = await loginToken(h, 'sensor-1');
  const client = await RawCoapClient.open(t, h.port);
  const block = (num: number, more: boolean, messageId: number) => sendBlock1(client, {
    path: ['telemetry', 'temp'], accessToken: token, num, more, szx: 2, payload: Buffer.alloc(more ? 64 : 10, 0x30 + num), messageId,
  });
  t.equal((await block(0, true, 0x580)).code, '2.31', 'block 0');
  const first = await block(1, true, 0x581);
  const again = await block(1, true, 0x581);
  t.same(again, first, 'block 1 sent twice: the same 2.31, from the exchange table');
  t.equal((await block(2, false, 0x582)).code, '2.01', 'the last block completes the upload');
  t.equal(h.backend.requests.length, 1, 'one backend request');
  t.same(h.backend.requests[0]?.body, Buffer.concat([Buffer.alloc(64, 0x30), Buffer.alloc(64, 0x31), Buffer.alloc(10, 0x32)]),
    'the body has each block once, in order');
});

t.test('ETag: the backend\'s ETag becomes a CoAP ETag; a GET that holds it gets 2.03 Valid without payload', async (t) => {
  const h = await startHarness(t);
  const token = await loginToken(h, 'sensor-1');
  const client = await RawCoapClient.open(t, h.port);
  let messageId = 0x600;
  const get = async (etags: Buffer[]) => {
    const coapToken = Buffer.from([0xe7, messageId & 0xff]);
    await client.send(rawRequest({
      path: ['config'], accessToken: token, messageId: messageId++, token: coapToken,
      extraOptions: etags.map((value) => ({ name: 'ETag', value })),
    }));
    return client.next(isAnswerTo(coapToken), 'answer to GET /config');
  };
  for (const httpEtag of ['"v1"', 'W/"a-much-longer-entity-tag-0123456789"']) {
    h.backend.setHandler((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', etag: httpEtag }).end(JSON.stringify({ interval: 60 }));
    });
    const first = await get([]);
    t.equal(first.code, '2.05', `${httpEtag}: 2.05`);
    const [etag] = optionValues(first, 'ETag');
    t.ok(etag !== undefined && etag.length >= 1 && etag.length <= 8, `${httpEtag}: a CoAP ETag of 1-8 bytes (${etag?.toString('hex')})`);
    if (httpEtag.length <= 8) t.equal(etag?.toString('utf8'), httpEtag, `${httpEtag}: a short ETag travels as its own bytes`);
    const valid = await get([Buffer.from('other'), etag!]);
    t.equal(valid.code, '2.03', `${httpEtag}: holding it (among others): 2.03 Valid`);
    t.equal(valid.payload.length, 0, `${httpEtag}: 2.03 carries no payload`);
    t.same(optionValues(valid, 'ETag'), [etag], `${httpEtag}: 2.03 names the ETag that is valid`);
    t.equal((await get([Buffer.from('stale')])).code, '2.05', `${httpEtag}: a stale ETag gets the representation`);
  }
  await h.assertStillServes(t);
});

t.test('Location: a backend 201 with Location becomes Location-Path and Location-Query options', async (t) => {
  const h = await startHarness(t);
  const token = await loginToken(h, 'sensor-1');
  const client = await RawCoapClient.open(t, h.port);
  h.backend.setHandler((_req, res) => void res.writeHead(201, { location: '/devices/x/things/7?a=b' }).end());
  const coapToken = Buffer.from('10ca', 'hex');
  await client.send(rawRequest({
    method: 'POST', path: ['telemetry', 'temp'], accessToken: token, messageId: 0x700, token: coapToken,
    contentFormat: 50, payload: Buffer.from('{"celsius":21.5}'),
  }));
  const answer = await client.next(isAnswerTo(coapToken), 'answer to the POST');
  t.equal(answer.code, '2.01');
  t.same(optionValues(answer, 'Location-Path').map(String), ['devices', 'x', 'things', '7'], 'Location-Path, one segment each');
  t.same(optionValues(answer, 'Location-Query').map(String), ['a=b'], 'Location-Query');
});

t.test('/.well-known/core filtered by rt, href and ct (RFC 6690 section 4.1)', async (t) => {
  const h = await startHarness(t);
  // With an Access-Token, so the listing comes at once (RFC 7252 section 11.3): what is checked here is the filtering.
  const accessToken = await loginToken(h, 'sensor-1');
  const device = await h.device();
  const targets = async (query: string) => {
    const answer = await device.send({ path: '/.well-known/core', query, token: accessToken });
    t.equal(answer.code, '2.05', `?${query}: 2.05`);
    const text = answer.payload.toString('utf8');
    return text === '' ? [] : text.split(',').map((link) => /^<([^>]*)>/.exec(link)?.[1]);
  };
  t.same(await targets('rt=gw.auth'), ['/auth'], '?rt=gw.auth: only /auth');
  t.same(await targets('href=/config'), ['/config'], '?href=/config: only /config');
  t.same(await targets('rt=gw*'), ['/auth', '/auth/refresh', '/auth/nonce', '/config'], '?rt=gw*: every resource (prefix match)');
  t.same(await targets('rt=gw.auth*'), ['/auth', '/auth/refresh', '/auth/nonce'], '?rt=gw.auth*: the three auth resources');
  t.same(await targets('href=/auth*'), ['/auth', '/auth/refresh', '/auth/nonce'], '?href=/auth*');
  t.same(await targets('ct=60'), ['/auth', '/auth/refresh', '/auth/nonce', '/config'], '?ct=60');
  t.same(await targets('rt=nothing'), [], '?rt=nothing: no links');
  if (await requireLibcoap(t)) {
    // Without an Access-Token: libcoap repeats the request with the 4.01's Echo value by itself (RFC 9175 section 2.4).
    const run = await libcoap(t, `coap://127.0.0.1:${h.port}/.well-known/core?rt=gw.auth`, []);
    t.equal(run.answer.code, '2.05');
    t.match(run.payload.toString('utf8'), /^<\/auth>;[^,]*$/, 'libcoap: one link, /auth');
    const echo = /Echo:(0x[0-9a-f]+)/.exec(run.pdus.find((p) => p.code === '4.01')?.options ?? '')?.[1];
    t.ok(echo !== undefined, 'libcoap: first a 4.01 with an Echo option');
    t.ok(echo !== undefined && run.pdus.filter((p) => p.code === 'GET').at(-1)?.options.includes(`Echo:${echo}`), 'libcoap: the GET repeated with it');
  }
});

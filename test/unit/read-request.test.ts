import t from 'tap';
import { generate, parse, type Option as PacketOption } from 'coap-packet';
import { readRequest, type RequestOptions } from '../../gateway/src/coap/read-request.ts';
import type { CoapRequest } from '../../gateway/src/messages.ts';
import { GatewayError, RequestError } from '../../gateway/src/errors.ts';

// RFC 7252 section 5.4 (critical options), 5.7.2 (proxying), 5.8 (methods); RFC 7959 and
// RFC 9175 (block-wise identity). Requests go through coap-packet's generate and parse, as the
// endpoint receives them.

const PEER = { address: '192.0.2.7', port: 5683 };

interface Spec {
  code?: string;
  token?: string;
  messageId?: number;
  path?: string[];
  query?: string[];
  contentFormat?: number;
  accept?: number;
  accessToken?: string;
  requestTag?: string[];
  payload?: string;
  /** Options by number, in any order (coap-packet sorts them). */
  extra?: [number, Buffer][];
}

const uint = (n: number): Buffer => {
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return Buffer.from(bytes);
};

function packetOf(spec: Spec) {
  const options: PacketOption[] = [];
  const add = (number: number, value: Buffer) => options.push({ name: String(number), value });
  for (const segment of spec.path ?? ['sensors', 'temp']) add(11, Buffer.from(segment));
  for (const pair of spec.query ?? []) add(15, Buffer.from(pair));
  if (spec.contentFormat !== undefined) add(12, uint(spec.contentFormat));
  if (spec.accept !== undefined) add(17, uint(spec.accept));
  if (spec.accessToken !== undefined) add(65003, Buffer.from(spec.accessToken, 'latin1'));
  for (const tag of spec.requestTag ?? []) add(292, Buffer.from(tag, 'hex'));
  for (const [number, value] of spec.extra ?? []) add(number, value);
  const datagram = generate({
    code: spec.code ?? '0.02', messageId: spec.messageId ?? 1, token: Buffer.from(spec.token ?? 'a1b2', 'hex'), confirmable: true,
    options, payload: Buffer.from(spec.payload ?? ''),
  }, 65_535);
  return parse(datagram);
}

/** The request and the options the layers read, side by side. */
const read = (spec: Spec): RequestOptions & { request: CoapRequest } => {
  const { request, options } = readRequest(packetOf(spec), PEER, 'req-1');
  return { request, ...options };
};

t.test('a plain request: method, segments, path, query, formats, token, payload and peer', async (t) => {
  const { request, block1, block2, size1Bytes, wantsSize2 } = read({
    path: ['sensors', 'temp'], query: ['unit=c', 'n=3'], contentFormat: 60, accept: 50, accessToken: 'eyJhbGciOi.x.y',
    payload: 'hello', extra: [[4, Buffer.from('e1e2', 'hex')], [4, Buffer.from('e3', 'hex')]],
  });
  t.equal(request.method, 'POST');
  t.same(request.segments, ['sensors', 'temp']);
  t.equal(request.path, '/sensors/temp');
  t.same(request.query, ['unit=c', 'n=3']);
  t.equal(request.contentFormat, 60);
  t.equal(request.accept, 50);
  t.equal(request.accessToken, 'eyJhbGciOi.x.y');
  t.equal(request.payload.toString(), 'hello');
  t.same(request.etags.map((e) => e.toString('hex')), ['e1e2', 'e3'], 'ETags in order');
  t.same(request.peer, PEER);
  t.equal(block1, undefined);
  t.equal(block2, undefined);
  t.equal(size1Bytes, undefined);
  t.equal(wantsSize2, false);
});

t.test('no Uri-Path is the path "/"; an empty Content-Format value is 0 (text/plain)', async (t) => {
  const { request } = read({ path: [], extra: [[12, Buffer.alloc(0)]] });
  t.equal(request.path, '/');
  t.same(request.segments, []);
  t.equal(request.contentFormat, 0);
});

t.test('the Access-Token is read byte for byte (latin1), CWT bytes included', async (t) => {
  const cwt = Buffer.from([0xd2, 0x84, 0x43, 0xa1, 0x01, 0x26, 0xff, 0x00]);
  const { request } = read({ extra: [[65003, cwt]] });
  t.ok(Buffer.from(request.accessToken ?? '', 'latin1').equals(cwt));
});

t.test('Block1, Block2, Size1 and Size2 are read for the transport', async (t) => {
  const tr = read({
    extra: [[27, Buffer.from('2a', 'hex')], [23, Buffer.from('0116', 'hex')], [60, uint(20_000)], [28, Buffer.alloc(0)]],
  });
  t.same(tr.block1, { num: 2, more: true, szx: 2 });
  t.same(tr.block2, { num: 17, more: false, szx: 6 });
  t.equal(tr.size1Bytes, 20_000);
  t.equal(tr.wantsSize2, true, 'Size2 with the value 0 asks for the size');
});

t.test('every critical option the gateway does not implement -> GW_ERR_BAD_OPTION (4.02)', async (t) => {
  const cases: [string, number, Buffer][] = [
    ['If-Match', 1, Buffer.from('01', 'hex')],
    ['If-None-Match', 5, Buffer.alloc(0)],
    ['Q-Block1', 19, Buffer.alloc(0)],
    ['Q-Block2', 31, Buffer.alloc(0)],
    ['OCF-Accept-Content-Format-Version', 2049, uint(2048)],
    ['OCF-Content-Format-Version', 2053, uint(2048)],
    ['experimental 65001', 65001, Buffer.from('x')],
  ];
  for (const [name, number, value] of cases) {
    t.throws(() => read({ extra: [[number, value]] }), { name: 'RequestError', code: 'GW_ERR_BAD_OPTION' }, `${name} (${number})`);
  }
  try {
    read({ extra: [[19, Buffer.alloc(0)]] });
    t.fail('Q-Block1 must throw');
  } catch (err) {
    t.ok(err instanceof RequestError, 'a RequestError');
    t.equal((err as GatewayError).coapCode, '4.02');
  }
});

t.test('the OSCORE option (9) is read for the OSCORE layer: at most 255 bytes, once', async (t) => {
  t.same(read({ extra: [[9, Buffer.from('0901', 'hex')]] }).oscore, Buffer.from('0901', 'hex'), 'its value');
  t.same(read({ extra: [[9, Buffer.alloc(0)]] }).oscore, Buffer.alloc(0), 'an empty one too (the layer judges it)');
  t.equal(read({}).oscore, undefined, 'absent: a request in clear');
  t.throws(() => read({ extra: [[9, Buffer.alloc(256, 1)]] }), { code: 'GW_ERR_BAD_OPTION' }, '256 bytes: 4.02');
  t.throws(() => read({ extra: [[9, Buffer.from('09', 'hex')], [9, Buffer.from('09', 'hex')]] }), { code: 'GW_ERR_BAD_OPTION' }, 'twice: 4.02');
});

t.test('Proxy-Uri and Proxy-Scheme -> GW_ERR_PROXYING_NOT_SUPPORTED (5.05)', async (t) => {
  for (const [name, number, value] of [['Proxy-Uri', 35, 'coap://example.org/x'], ['Proxy-Scheme', 39, 'coap']] as const) {
    t.throws(() => read({ extra: [[number, Buffer.from(value)]] }), { name: 'RequestError', code: 'GW_ERR_PROXYING_NOT_SUPPORTED' }, name);
  }
});

t.test('elective options the gateway does not implement are ignored', async (t) => {
  const base = read({ accessToken: 'tok' });
  const cases: [string, number, Buffer][] = [
    ['experimental 65000', 65000, Buffer.from('x')],
    ['No-Response', 258, uint(26)],
    ['Observe', 6, Buffer.alloc(0)],
    ['Observe, 4 bytes (too long)', 6, Buffer.from('01020304', 'hex')],
    ['Hop-Limit', 16, uint(16)],
    ['Max-Age', 14, uint(60)],
    ['Location-Path', 8, Buffer.from('x')],
  ];
  for (const [name, number, value] of cases) {
    t.same(read({ accessToken: 'tok', extra: [[number, value]] }), base, name);
  }
});

t.test('an implemented elective option with a bad length is ignored, not an error (section 5.4.3)', async (t) => {
  const { request } = read({ extra: [[12, Buffer.from('00003c', 'hex')]] });
  t.equal(request.contentFormat, undefined, 'Content-Format (12, elective) of 3 bytes: as if absent');
  const withEtag = read({ extra: [[4, Buffer.alloc(9, 1)]] });
  t.same(withEtag.request.etags, [], 'ETag (4, elective) of 9 bytes: as if absent');
  const withSize1 = read({ extra: [[60, Buffer.alloc(5, 1)]] });
  t.equal(withSize1.size1Bytes, undefined, 'Size1 (60, elective) of 5 bytes: as if absent');
});

t.test('an implemented critical option with a bad length -> GW_ERR_BAD_OPTION', async (t) => {
  const cases: [string, number, Buffer][] = [
    ['Block1 of 4 bytes', 27, Buffer.from('00000108', 'hex')],
    ['Block2 of 4 bytes', 23, Buffer.from('00000106', 'hex')],
    ['Accept of 3 bytes', 17, Buffer.from('00003c', 'hex')],
    ['Uri-Host of 0 bytes', 3, Buffer.alloc(0)],
    ['Uri-Port of 3 bytes', 7, Buffer.from('001633', 'hex')],
    ['Uri-Path of 256 bytes', 11, Buffer.alloc(256, 0x61)],
    ['Uri-Query of 256 bytes', 15, Buffer.alloc(256, 0x61)],
    ['Access-Token of 2049 bytes', 65003, Buffer.alloc(2049, 0x61)],
  ];
  for (const [name, number, value] of cases) {
    t.throws(() => read({ path: [], extra: [[number, value]] }), { code: 'GW_ERR_BAD_OPTION' }, name);
  }
  t.equal(read({ extra: [[65003, Buffer.alloc(2048, 0x61)]] }).request.accessToken?.length, 2048, 'an Access-Token of 2048 bytes is fine');
});

t.test('a repeated non-repeatable critical option -> GW_ERR_BAD_OPTION (section 5.4.5)', async (t) => {
  const cases: [string, number, Buffer][] = [
    ['Accept', 17, uint(60)],
    ['Block1', 27, Buffer.from('0a', 'hex')],
    ['Block2', 23, Buffer.from('06', 'hex')],
    ['Uri-Host', 3, Buffer.from('gw.example')],
    ['Uri-Port', 7, uint(5683)],
    ['Access-Token', 65003, Buffer.from('tok')],
  ];
  for (const [name, number, value] of cases) {
    t.not(read({ extra: [[number, value]] }), undefined, `one ${name} is fine`);
    t.throws(() => read({ extra: [[number, value], [number, value]] }), { code: 'GW_ERR_BAD_OPTION' }, `two ${name}`);
  }
});

t.test('a repeated elective option: the first counts, the others are ignored', async (t) => {
  const { request } = read({ extra: [[12, uint(60)], [12, uint(50)]] });
  t.equal(request.contentFormat, 60, 'the first Content-Format');
});

t.test('repeatable options may repeat: Uri-Path, Uri-Query, ETag, Request-Tag', async (t) => {
  const tr = read({ path: ['a', 'b', 'c'], query: ['x=1', 'y=2'], requestTag: ['01', '02'], extra: [[4, Buffer.from('aa', 'hex')], [4, Buffer.from('bb', 'hex')]] });
  t.same(tr.request.segments, ['a', 'b', 'c']);
  t.same(tr.request.query, ['x=1', 'y=2']);
  t.equal(tr.request.etags.length, 2);
});

t.test('method codes 0.01-0.07 are GET, POST, PUT, DELETE, FETCH, PATCH, iPATCH', async (t) => {
  const names = ['GET', 'POST', 'PUT', 'DELETE', 'FETCH', 'PATCH', 'iPATCH'];
  names.forEach((name, i) => t.equal(read({ code: `0.0${i + 1}` }).request.method, name, `0.0${i + 1}`));
});

t.test('an unknown method code -> GW_ERR_METHOD_NOT_ALLOWED (4.05, section 5.8)', async (t) => {
  for (const code of ['0.08', '0.09', '0.31']) {
    t.throws(() => read({ code }), { name: 'RequestError', code: 'GW_ERR_METHOD_NOT_ALLOWED' }, code);
  }
});

t.test("Uri-Path segments containing '/' or '%' are escaped in path and kept in segments", async (t) => {
  const { request } = read({ path: ['a/b', 'c%d', '%2F', 'plain', ''] });
  t.same(request.segments, ['a/b', 'c%d', '%2F', 'plain', '']);
  t.equal(request.path, '/a%2Fb/c%25d/%252F/plain/');
  t.not(read({ path: ['a/b'] }).request.path, read({ path: ['a', 'b'] }).request.path, "['a/b'] and ['a','b'] are different paths");
  t.not(read({ path: ['%2F'] }).request.path, read({ path: ['/'] }).request.path, "['%2F'] and ['/'] are different paths");
});

t.test('blockKey differs by method, path, query, Content-Format, Accept and Request-Tag', async (t) => {
  const base: Spec = { code: '0.02', path: ['up'], query: ['a=1'], contentFormat: 60, accept: 60, requestTag: ['01'] };
  const key = read(base).blockKey;
  const variants: [string, Spec][] = [
    ['method', { ...base, code: '0.03' }],
    ['path', { ...base, path: ['down'] }],
    ['path depth', { ...base, path: ['up', ''] }],
    ['query', { ...base, query: ['a=2'] }],
    ['no query', { ...base, query: [] }],
    ['Content-Format', { ...base, contentFormat: 50 }],
    ['no Content-Format', { ...base, contentFormat: undefined }],
    ['Accept', { ...base, accept: 50 }],
    ['Request-Tag value', { ...base, requestTag: ['02'] }],
    ['no Request-Tag', { ...base, requestTag: [] }],
    ['an empty Request-Tag (RFC 9175: not the same as none)', { ...base, requestTag: [''] }],
    ['two Request-Tags', { ...base, requestTag: ['01', '01'] }],
  ];
  for (const [what, spec] of variants) t.not(read(spec).blockKey, key, what);
});

t.test('blockKey does not depend on the CoAP token, message ID, Access-Token, payload or block options', async (t) => {
  const base: Spec = { path: ['up'], contentFormat: 60, accessToken: 'token-one', token: 'a1', messageId: 1, payload: 'abc' };
  const key = read(base).blockKey;
  const variants: [string, Spec][] = [
    ['CoAP token', { ...base, token: 'b2b2b2b2b2b2b2b2' }],
    ['no CoAP token', { ...base, token: '' }],
    ['message ID', { ...base, messageId: 999 }],
    ['Access-Token', { ...base, accessToken: 'token-two' }],
    ['no Access-Token', { ...base, accessToken: undefined }],
    ['payload', { ...base, payload: 'xyz' }],
    ['Block1', { ...base, extra: [[27, Buffer.from('1a', 'hex')]] }],
    ['Block2', { ...base, extra: [[23, Buffer.from('16', 'hex')]] }],
    ['Size1', { ...base, extra: [[60, uint(3000)]] }],
  ];
  for (const [what, spec] of variants) t.equal(read(spec).blockKey, key, what);
});

t.test('blockKey tells apart requests whose options differ only in how they are split', async (t) => {
  t.not(read({ query: ['a&b'] }).blockKey, read({ query: ['a', 'b'] }).blockKey, "one Uri-Query 'a&b' vs two, 'a' and 'b'");
  t.not(read({ path: ['a?b'], query: [] }).blockKey, read({ path: ['a'], query: ['b?'] }).blockKey, "Uri-Path 'a?b' vs Uri-Path 'a' with Uri-Query 'b?'");
});

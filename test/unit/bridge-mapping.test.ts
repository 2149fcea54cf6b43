import { createHash } from 'node:crypto';
import t from 'tap';
import { checkAnswerFormat, checkRequestContentFormat, negotiate } from '../../gateway/src/bridge/body-mapping.ts';
import { coapEtagFor } from '../../gateway/src/bridge/etag.ts';
import { buildBridge } from '../../gateway/src/bridge/forward.ts';
import { locationOptionsFor } from '../../gateway/src/bridge/location.ts';
import type { RouteConfig } from '../../gateway/src/config/index.ts';
import { RequestError } from '../../gateway/src/errors.ts';
import type { CoapRequest, CoapResponse } from '../../gateway/src/messages.ts';
import { startTestBackend, type BackendHandler } from '../helpers/test-backend.ts';

const CBOR_JSON: RouteConfig = { path: '/things/{name}', methods: ['GET', 'POST'], scope: 's', backendPath: '/things/{sub}/{name}', body: 'cbor-json' };
const RAW: RouteConfig = { path: '/raw', methods: ['GET', 'POST'], scope: 's', backendPath: '/raw', body: 'pass-through' };

/** tap matches the thrown error's fields: its class name and its stable code. */
const requestError = (code: string) => ({ name: RequestError.name, code });

t.test('coapEtagFor: an HTTP entity-tag of up to 8 bytes is its own CoAP ETag (RFC 7252 section 5.10.6)', async (t) => {
  t.same(coapEtagFor('"v1"'), Buffer.from('"v1"'), 'quotes kept: the whole header value is the identity');
  t.same(coapEtagFor('W/"v1"'), Buffer.from('W/"v1"'), 'a weak tag keeps its W/');
  t.same(coapEtagFor('"123456"'), Buffer.from('"123456"'), 'exactly 8 bytes');
  t.same(coapEtagFor('"é"'), Buffer.from('"é"', 'utf8'), 'bytes, not characters');
});

t.test('coapEtagFor: a longer one becomes the first 8 bytes of its SHA-256', async (t) => {
  const long = '"1234567"';
  const expected = createHash('sha256').update(long).digest().subarray(0, 8);
  t.same(coapEtagFor(long), expected, '9 bytes: hashed');
  t.equal(coapEtagFor('"33a64df551425fcc55e4d42a148795d9f25f89d4"').length, 8);
  t.same(coapEtagFor(long), coapEtagFor(long), 'stable');
  t.notSame(coapEtagFor('W/"1234567"'), coapEtagFor(long), 'weak and strong differ');
  t.throws(() => coapEtagFor(''), TypeError, 'an empty value is caller misuse');
});

t.test('locationOptionsFor: same origin, prefix stripped, segments and pairs decoded (RFC 7252 sections 5.10.7, 6.4)', async (t) => {
  const target = new URL('http://backend:8080/api/things/dev1');
  t.same(locationOptionsFor('/api/things/dev1/42?rev=3&x=a%26b', target, '/api'),
    { locationPath: ['things', 'dev1', '42'], locationQuery: ['rev=3', 'x=a&b'] });
  t.same(locationOptionsFor('http://backend:8080/api/a%2Fb/%C3%A9', target, '/api'), { locationPath: ['a/b', 'é'], locationQuery: [] },
    'an absolute URL; %2F stays inside its segment');
  t.same(locationOptionsFor('42', target, '/api'), { locationPath: ['things', '42'], locationQuery: [] },
    'a relative reference resolves against the request target (RFC 9110 section 10.2.2)');
  t.same(locationOptionsFor('/other/1', target, '/api'), { locationPath: ['other', '1'], locationQuery: [] }, 'outside the prefix: kept whole');
  t.same(locationOptionsFor('/apiary/1', target, '/api'), { locationPath: ['apiary', '1'], locationQuery: [] }, 'the prefix is whole segments');
  t.same(locationOptionsFor('/api', target, '/api'), { locationPath: [], locationQuery: [] }, 'the prefix itself: no Location-Path');
  t.same(locationOptionsFor('/x/', target, ''), { locationPath: ['x', ''], locationQuery: [] }, 'a trailing slash is an empty segment');
});

t.test('locationOptionsFor: another origin, unparseable, or a segment over 255 bytes gives no Location', async (t) => {
  const target = new URL('http://backend:8080/api/things');
  t.equal(locationOptionsFor('http://elsewhere:8080/api/1', target, '/api'), undefined, 'another host');
  t.equal(locationOptionsFor('https://backend:8080/api/1', target, '/api'), undefined, 'another scheme');
  t.equal(locationOptionsFor('http://backend:9090/api/1', target, '/api'), undefined, 'another port');
  t.equal(locationOptionsFor('http://[::1', target, '/api'), undefined, 'unparseable');
  t.equal(locationOptionsFor('/api/%E0%A4%A', target, '/api'), undefined, 'malformed percent-encoding');
  t.same(locationOptionsFor(`/${'a'.repeat(255)}`, target, '')?.locationPath, ['a'.repeat(255)], '255 bytes fit');
  t.equal(locationOptionsFor(`/ok/${'a'.repeat(256)}`, target, ''), undefined, '256 bytes do not');
  t.equal(locationOptionsFor(`/${'%C3%A9'.repeat(128)}`, target, ''), undefined, '128 characters, 256 bytes');
  t.equal(locationOptionsFor(`/ok?q=${'a'.repeat(254)}`, target, ''), undefined, 'a query pair is an option too');
});

t.test('checkRequestContentFormat: cbor-json takes none, CBOR or JSON; pass-through takes anything', async (t) => {
  for (const format of [undefined, 60, 50]) t.doesNotThrow(() => checkRequestContentFormat(CBOR_JSON, format), `cbor-json, ${format}`);
  for (const format of [0, 40, 42, 112, -1]) {
    t.throws(() => checkRequestContentFormat(CBOR_JSON, format), requestError('GW_ERR_UNSUPPORTED_CONTENT_FORMAT'), `cbor-json, ${format}`);
  }
  for (const format of [undefined, 0, 42, 112, -1]) t.doesNotThrow(() => checkRequestContentFormat(RAW, format), `pass-through, ${format}`);
});

t.test('negotiate: the Accept header the backend gets', async (t) => {
  t.same(negotiate(CBOR_JSON, undefined), { acceptHeader: 'application/json', wantJson: false });
  t.same(negotiate(CBOR_JSON, 50), { acceptHeader: 'application/json', wantJson: true });
  t.throws(() => negotiate(CBOR_JSON, 0), requestError('GW_ERR_NOT_ACCEPTABLE'));
  t.same(negotiate(RAW, undefined), { acceptHeader: '*/*', wantJson: false });
  t.same(negotiate(RAW, 50), { acceptHeader: 'application/json', wantJson: false });
  t.same(negotiate(RAW, 0), { acceptHeader: 'text/plain; charset=utf-8', wantJson: false });
  t.throws(() => negotiate(RAW, 9999), requestError('GW_ERR_NOT_ACCEPTABLE'), 'a format with no media type');
  t.doesNotThrow(() => checkAnswerFormat(RAW, 0, 'text/plain'), 'parameters do not matter');
  t.throws(() => checkAnswerFormat(RAW, 0, undefined), requestError('GW_ERR_NOT_ACCEPTABLE'), 'no content type is no match');
});

// forward(): a real HTTP backend on an ephemeral port, behind a base URL with a path prefix.
const backend = await startTestBackend();
const bridge = buildBridge({ url: `${backend.url}/api/`, caFile: undefined, timeoutMs: 2000, connections: 2, nowMs: () => 0 });
t.teardown(async () => {
  await bridge.close();
  await backend.close();
});

const request = (over: Partial<CoapRequest> = {}): CoapRequest => ({
  id: 'r1', method: 'GET', segments: [], path: '/', query: [], payload: Buffer.alloc(0), contentFormat: undefined, accept: undefined,
  etags: [], accessToken: 'tok', peer: { address: '127.0.0.1', port: 5683 }, ...over,
});

async function forward(route: RouteConfig, over: Partial<CoapRequest>, handler: BackendHandler): Promise<CoapResponse> {
  backend.setHandler(handler);
  const params: Record<string, string> = route === CBOR_JSON ? { name: 'lamp' } : {};
  const forwarded = await bridge.forward({ request: request(over), match: { route, params }, deviceId: 'dev1', accessToken: 'tok' });
  // An answer the bridge could not map is returned beside the backend's status; as a rejection here.
  if (forwarded.response === undefined) throw forwarded.error;
  return forwarded.response;
}

const json = (status: number, headers: Record<string, string> = {}): BackendHandler => (_req, res) => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end('{"on":true}');
};

t.test('forward: the backend ETag becomes the CoAP ETag of a 2.05', async (t) => {
  const short = await forward(CBOR_JSON, {}, json(200, { etag: '"v1"' }));
  t.equal(short.code, '2.05');
  t.same(short.etag, Buffer.from('"v1"'));
  t.ok(short.payload?.length, 'with its payload');
  const long = await forward(CBOR_JSON, {}, json(200, { etag: '"a-long-entity-tag"' }));
  t.same(long.etag, coapEtagFor('"a-long-entity-tag"'));
  t.equal((await forward(CBOR_JSON, {}, json(200))).etag, undefined, 'no ETag header, no ETag option');
});

t.test('forward: a GET naming the current ETag gets 2.03 Valid, no payload, with Max-Age (RFC 7252 section 5.10.6.2)', async (t) => {
  const etag = coapEtagFor('"a-long-entity-tag"');
  const answer = await forward(CBOR_JSON, { etags: [Buffer.from('old'), etag] }, json(200, { etag: '"a-long-entity-tag"', 'cache-control': 'max-age=30' }));
  t.same(answer, { code: '2.03', etag, maxAgeSec: 30 });
  const stale = await forward(CBOR_JSON, { etags: [Buffer.from('old')] }, json(200, { etag: '"a-long-entity-tag"' }));
  t.equal(stale.code, '2.05', 'another ETag: the full answer');
  t.ok(stale.payload?.length);
});

t.test('forward: 2.03 only for a GET answered with success', async (t) => {
  const etags = [Buffer.from('"v1"')];
  const missing = await forward(CBOR_JSON, { etags }, json(404, { etag: '"v1"' }));
  t.equal(missing.code, '4.04');
  t.equal(missing.etag, undefined, 'no ETag on an error');
  const post = await forward(CBOR_JSON, { method: 'POST', etags }, json(200, { etag: '"v1"' }));
  t.equal(post.code, '2.04', 'not for a POST');
});

t.test('forward: a backend 304 is 2.03 with its ETag and no payload', async (t) => {
  const answer = await forward(CBOR_JSON, {}, (_req, res) => void res.writeHead(304, { etag: '"v2"', 'cache-control': 'max-age=5' }).end());
  t.same(answer, { code: '2.03', etag: Buffer.from('"v2"'), maxAgeSec: 5 });
});

t.test('forward: the Location of a 201 becomes Location-Path and Location-Query, prefix stripped', async (t) => {
  const created = (location: string, status = 201): BackendHandler => (_req, res) => void res.writeHead(status, { location }).end();
  const answer = await forward(CBOR_JSON, { method: 'POST' }, created('/api/things/dev1/lamp/7?rev=1'));
  t.equal(answer.code, '2.01');
  t.same(answer.locationPath, ['things', 'dev1', 'lamp', '7']);
  t.same(answer.locationQuery, ['rev=1']);
  t.equal(backend.requests.at(-1)?.url, '/api/things/dev1/lamp', 'the request went under the prefix');
  const relative = await forward(CBOR_JSON, { method: 'POST' }, created('lamp/8'));
  t.same(relative.locationPath, ['things', 'dev1', 'lamp', '8'], 'relative to the request target');
  const foreign = await forward(CBOR_JSON, { method: 'POST' }, created('http://elsewhere.example/api/things/1'));
  t.equal(foreign.code, '2.01');
  t.equal(foreign.locationPath, undefined, 'another origin: no Location options');
  const onChanged = await forward(CBOR_JSON, { method: 'POST' }, created('/api/things/1', 200));
  t.equal(onChanged.locationPath, undefined, 'only on 201');
});

t.test('forward: pass-through sends the device Accept as a media type, */* without one', async (t) => {
  const text: BackendHandler = (_req, res) => void res.writeHead(200, { 'content-type': 'text/plain' }).end('21.5');
  const answer = await forward(RAW, { accept: 0 }, text);
  t.equal(backend.requests.at(-1)?.headers.accept, 'text/plain; charset=utf-8');
  t.same(answer, { code: '2.05', payload: Buffer.from('21.5'), contentFormat: 0 });
  await forward(RAW, {}, text);
  t.equal(backend.requests.at(-1)?.headers.accept, '*/*');
  await forward(CBOR_JSON, { accept: 60 }, json(200));
  t.equal(backend.requests.at(-1)?.headers.accept, 'application/json', 'cbor-json routes still ask for JSON');
});

t.test('forward: pass-through answer in another format than Accept -> 4.06 (RFC 7252 section 5.10.4)', async (t) => {
  await t.rejects(forward(RAW, { accept: 60 }, json(200)), requestError('GW_ERR_NOT_ACCEPTABLE'), 'JSON for an Accept of CBOR');
  const missing = await forward(RAW, { accept: 60 }, json(404));
  t.equal(missing.code, '4.04', 'an error answer keeps its code');
  const empty = await forward(RAW, { accept: 60 }, (_req, res) => void res.writeHead(204).end());
  t.equal(empty.code, '2.04', 'no body, nothing to refuse');
  const before = backend.requests.length;
  await t.rejects(forward(RAW, { accept: 9999 }, json(200)), requestError('GW_ERR_NOT_ACCEPTABLE'), 'a format with no media type');
  t.equal(backend.requests.length, before, 'refused before the backend is asked');
});

t.test('forward: a cbor-json body in another content format is 4.15, before the backend is asked', async (t) => {
  const before = backend.requests.length;
  await t.rejects(forward(CBOR_JSON, { method: 'POST', payload: Buffer.from('hi'), contentFormat: 0 }, json(200)),
    requestError('GW_ERR_UNSUPPORTED_CONTENT_FORMAT'));
  t.equal(backend.requests.length, before);
});

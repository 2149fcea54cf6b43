import t from 'tap';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Decoder } from 'cbor-x';
import { ErrorKey, WireError } from '../../gateway/src/wire/index.ts';
import { startHarness, type Harness } from '../helpers/harness.ts';
import { BRIDGE_ROUTES, BRIDGE_SCOPES, holdingHandler, okHandler, plain } from '../helpers/bridge-fixtures.ts';
import { RawCoapClient, isAnswerTo, isEmptyAck, loginToken, rawRequest, uintOption, type RawRequest } from '../helpers/bridge-raw-coap.ts';
import { nodeCoapRequest, openNodeCoapAgent } from '../helpers/node-coap-blockwise.ts';
import { forwardedClaims, jtiOf } from '../helpers/backend-jwt.ts';

const cbor = new Decoder({ mapsAsObjects: false, useRecords: false });
type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

async function signedIn(h: Harness, id = 'sensor-1') {
  const secret = await h.provision(id, BRIDGE_SCOPES);
  const device = await h.device();
  const { tokens } = await device.login(id, secret);
  return { device, token: tokens!.accessToken };
}

const wireCode = (body: unknown) => (body as Map<number, unknown> | undefined)?.get(ErrorKey.code);

// RFC 8075 section 7, the backend guide's status table. `headers` are the backend's; `maxAge` what the device must see.
interface Row { method: Method; status: number; code: string; headers?: () => IncomingHttpHeaders; maxAge?: [number, number] }
const rows: Row[] = [
  { method: 'GET', status: 200, code: '2.05' },
  { method: 'POST', status: 200, code: '2.04' },
  { method: 'PUT', status: 200, code: '2.04' },
  { method: 'DELETE', status: 200, code: '2.02' },
  { method: 'POST', status: 201, code: '2.01' },
  { method: 'PUT', status: 204, code: '2.04' },
  { method: 'GET', status: 304, code: '2.03' },
  { method: 'GET', status: 302, code: '5.02' },
  { method: 'POST', status: 400, code: '4.00' },
  { method: 'GET', status: 401, code: '4.03' },
  { method: 'GET', status: 403, code: '4.03' },
  { method: 'GET', status: 404, code: '4.04' },
  { method: 'GET', status: 405, code: '4.05' },
  { method: 'GET', status: 406, code: '4.06' },
  { method: 'PUT', status: 412, code: '4.12' },
  { method: 'POST', status: 413, code: '4.13' },
  { method: 'POST', status: 415, code: '4.15' },
  { method: 'GET', status: 418, code: '4.00' },
  { method: 'POST', status: 429, code: '4.29', headers: () => ({ 'retry-after': '7' }), maxAge: [7, 7] },
  { method: 'GET', status: 500, code: '5.00' },
  { method: 'GET', status: 501, code: '5.01' },
  { method: 'GET', status: 502, code: '5.02' },
  { method: 'GET', status: 503, code: '5.03', headers: () => ({ 'retry-after': '120' }), maxAge: [120, 120] },
  // An HTTP-date has whole seconds: 90 s ahead is 89 or 90 s by the time it is mapped.
  { method: 'GET', status: 503, code: '5.03', headers: () => ({ 'retry-after': new Date(Date.now() + 90_000).toUTCString() }), maxAge: [89, 90] },
  { method: 'GET', status: 503, code: '5.03', headers: () => ({ 'retry-after': 'Wed, 21 Oct 2015 07:28:00 GMT' }), maxAge: [0, 0] },
  { method: 'GET', status: 504, code: '5.04' },
  { method: 'GET', status: 507, code: '5.00' },
  { method: 'GET', status: 200, code: '2.05', headers: () => ({ 'cache-control': 'public, max-age=30' }), maxAge: [30, 30] },
  { method: 'GET', status: 200, code: '2.05', headers: () => ({ 'cache-control': 'no-store' }), maxAge: [0, 0] },
];

t.test('backend status -> CoAP code, JSON body -> CBOR, Retry-After and Cache-Control -> Max-Age', async (t) => {
  const h = await startHarness(t, { config: { routes: BRIDGE_ROUTES } });
  const { device, token } = await signedIn(h);
  for (const row of rows) {
    const bodyless = row.status === 204 || row.status === 304;
    const headers = row.headers?.() ?? {};
    h.backend.setHandler((_req, res) => {
      if (bodyless) return void res.writeHead(row.status, headers).end();
      res.writeHead(row.status, { ...headers, 'content-type': 'application/json' }).end(JSON.stringify({ status: row.status, n: [1.5, null] }));
    });
    const name = `${row.method} -> HTTP ${row.status}${row.headers ? ` ${JSON.stringify(headers)}` : ''}`;
    const body = row.method === 'POST' || row.method === 'PUT' ? new Map([[1, 'on']]) : undefined;
    const answer = await device.send({ method: row.method, path: '/things/lamp', token, body });
    t.equal(answer.code, row.code, `${name}: ${row.code}`);
    if (row.maxAge === undefined) t.equal(answer.maxAgeSec, undefined, `${name}: no Max-Age`);
    else t.ok(answer.maxAgeSec !== undefined && answer.maxAgeSec >= row.maxAge[0] && answer.maxAgeSec <= row.maxAge[1], `${name}: Max-Age ${answer.maxAgeSec} in ${row.maxAge.join('..')}`);
    if (bodyless) t.equal(answer.payload.length, 0, `${name}: no body`);
    else if (row.code !== '5.02') {
      t.equal(answer.contentFormat, 'application/cbor', `${name}: content format 60`);
      t.same(plain(answer.body), { status: row.status, n: [1.5, null] }, `${name}: the JSON body as CBOR`);
    }
  }
  t.equal(h.backend.requests.length, rows.length, 'one backend request per row');
  await h.assertStillServes(t);
});

t.test('the bridged request: method, path, JSON body, headers; Accept 50 gets the JSON as it is', async (t) => {
  const h = await startHarness(t);
  const { device, token } = await signedIn(h);
  h.backend.setHandler((req, res) => {
    const stored: unknown = req.body.length > 0 ? JSON.parse(req.body.toString()) : null;
    res.writeHead(req.method === 'POST' ? 201 : 200, { 'content-type': 'application/json' }).end(JSON.stringify({ stored }));
  });
  const answer = await device.send({
    method: 'POST', path: '/telemetry/temp', token,
    body: new Map<unknown, unknown>([[1, 21.5], ['unit', 'C'], ['raw', Buffer.from([0xfb, 0xff])]]),
  });
  t.equal(answer.code, '2.01');
  const [req] = h.backend.requests;
  t.equal(req?.method, 'POST');
  t.equal(req?.url, '/devices/sensor-1/telemetry/temp');
  t.equal(req?.headers['content-type'], 'application/json');
  t.same(JSON.parse(req!.body.toString()), { 1: 21.5, unit: 'C', raw: '-_8' }, 'CBOR -> JSON, bytes as base64url');
  t.equal((await forwardedClaims(h, req)).jti, jtiOf(token), 'a full JWT of the device\'s token');
  t.equal(req?.headers['x-device-id'], 'sensor-1');
  t.equal(req?.headers.accept, 'application/json');
  t.match(req?.headers['x-request-id'], /^[0-9a-f-]{36}$/);
  t.same(plain(answer.body), { stored: { 1: 21.5, unit: 'C', raw: '-_8' } }, 'JSON -> CBOR');
  t.equal(answer.payload.subarray(0, 9).toString('hex'), 'a16673746f726564a3', 'compact map headers: a1 "stored" a3');

  const json = await device.send({ method: 'GET', path: '/config', token, accept: 50 });
  t.equal(json.code, '2.05');
  t.equal(json.contentFormat, 'application/json');
  t.same(JSON.parse(json.payload.toString()), { stored: null }, 'Accept 50: the backend JSON unchanged');
  await h.assertStillServes(t);
});

t.test('a body cbor-x writes by default (a record) or with tag 27 reaches the backend as the JSON it means', async (t) => {
  const h = await startHarness(t);
  const { device, token } = await signedIn(h);
  h.backend.setHandler((req, res) => void (req.method === 'POST' ? res.writeHead(204).end()
    : res.writeHead(200, { 'content-type': 'application/json' }).end('{}')));
  // `require('cbor-x').encode({ celsius: 21.5 })`: a record (tag 0xdfff) where a plain CBOR map was meant.
  const record = await device.send({ method: 'POST', path: '/telemetry/temp', token, contentFormat: 60,
    payload: Buffer.from('d9dfff8319e000816763656c73697573fb4035800000000000', 'hex') });
  t.equal(record.code, '2.04');
  t.same(JSON.parse(h.backend.requests[0]!.body.toString()), { celsius: 21.5 }, 'the backend gets the object, not "[object Object]"');
  const tagged = await device.send({ method: 'POST', path: '/telemetry/temp', token, contentFormat: 60,
    payload: Buffer.from('d81b82654572726f726178', 'hex') });
  t.equal(tagged.code, '2.04');
  t.same(JSON.parse(h.backend.requests[1]!.body.toString()), ['Error', 'x'], 'tag 27: its content');
  await h.assertStillServes(t);
});

t.test('backend timeout -> 5.04', async (t) => {
  const h = await startHarness(t, { config: { backendTimeoutMs: 300 } });
  const { device, token } = await signedIn(h);
  h.backend.setHandler(() => undefined);
  const answer = await device.send({ method: 'GET', path: '/config', token });
  t.equal(answer.code, '5.04');
  t.equal(wireCode(answer.body), WireError.gatewayTimeout);
  t.equal(h.backend.requests.length, 1);
  h.backend.setHandler(okHandler);
  await h.assertStillServes(t);
});

t.test('backend down -> 5.02; once it is back, requests go through', async (t) => {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const h = await startHarness(t, { config: { backend: `http://127.0.0.1:${port}` } });
  const { device, token } = await signedIn(h);
  const answer = await device.send({ method: 'GET', path: '/config', token });
  t.equal(answer.code, '5.02');
  t.equal(wireCode(answer.body), WireError.badGateway);

  const revived = createServer((req, res) => okHandler({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.alloc(0) }, res));
  await new Promise<void>((resolve) => revived.listen(port, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => { revived.close(() => resolve()); revived.closeAllConnections(); }));
  await h.assertStillServes(t);
});

t.test('backend answers invalid JSON as application/json -> 5.02', async (t) => {
  const h = await startHarness(t);
  const { device, token } = await signedIn(h);
  h.backend.setHandler((_req, res) => void res.writeHead(200, { 'content-type': 'application/json' }).end('{"interval": 6'));
  const answer = await device.send({ method: 'GET', path: '/config', token });
  t.equal(answer.code, '5.02');
  t.equal(wireCode(answer.body), WireError.badGateway);
  h.backend.setHandler(okHandler);
  await h.assertStillServes(t);
});

t.test('requests the gateway refuses never reach the backend', async (t) => {
  const h = await startHarness(t, { config: { maxPayloadBytes: 64 } });
  const { device, token } = await signedIn(h);
  const cases: [string, Parameters<typeof device.send>[0], string, number][] = [
    ['DELETE on a GET route', { method: 'DELETE', path: '/config', token }, '4.05', WireError.methodNotAllowed],
    ['unknown path', { method: 'GET', path: '/nowhere', token }, '4.04', WireError.notFound],
    ['route prefix only', { method: 'POST', path: '/telemetry', token }, '4.04', WireError.notFound],
    ['65 bytes > maxPayloadBytes 64', { method: 'POST', path: '/telemetry/temp', token, payload: Buffer.alloc(65, 0x61), contentFormat: 0 }, '4.13', WireError.payloadTooLarge],
    ['text/plain on a cbor-json route', { method: 'POST', path: '/telemetry/temp', token, payload: Buffer.from('21.5'), contentFormat: 0 }, '4.15', WireError.unsupportedContentFormat],
    ['malformed CBOR', { method: 'POST', path: '/telemetry/temp', token, payload: Buffer.from('a201', 'hex'), contentFormat: 60 }, '4.00', WireError.badRequest],
    ['CBOR with trailing bytes', { method: 'POST', path: '/telemetry/temp', token, payload: Buffer.from('0102', 'hex'), contentFormat: 60 }, '4.00', WireError.badRequest],
    ['Accept text/plain on a cbor-json route', { method: 'GET', path: '/config', token, accept: 0 }, '4.06', WireError.notAcceptable],
  ];
  for (const [name, request, code, wire] of cases) {
    const answer = await device.send(request);
    t.equal(answer.code, code, `${name}: ${code}`);
    t.equal(wireCode(answer.body), wire, `${name}: wire code ${wire}`);
  }
  t.equal(h.backend.requests.length, 0, 'none reached the backend');
  await h.assertStillServes(t);
});

t.test('Uri-Query options are forwarded, each pair percent-encoded', async (t) => {
  const h = await startHarness(t);
  const { device, token } = await signedIn(h);
  const answer = await device.send({ method: 'GET', path: '/config', token, query: 'fields=a,b&since=2024-01-01T00:00Z&flag' });
  t.equal(answer.code, '2.05');
  t.equal(h.backend.requests[0]?.url, '/devices/sensor-1/config?fields=a%2Cb&since=2024-01-01T00%3A00Z&flag');
  await h.assertStillServes(t);
});

/** Sends one raw request (node-coap's client would split '/' and '&' into several options). */
async function rawExchange(h: Harness, client: RawCoapClient, request: Omit<RawRequest, 'messageId' | 'token'>) {
  const before = h.backend.requests.length;
  const id = nextMessageId++;
  const token = Buffer.from([id >> 8, id & 0xff]);
  await client.send(rawRequest({ ...request, messageId: id, token }));
  const answer = await client.next(isAnswerTo(token), `answer to ${JSON.stringify(request.path)}`);
  return { code: answer.code, forwarded: h.backend.requests[before]?.url };
}
let nextMessageId = 0x100;

t.test('a path parameter is one Uri-Path option, percent-encoded as one backend segment', async (t) => {
  const h = await startHarness(t);
  const accessToken = await loginToken(h, 'sensor-1');
  const client = await RawCoapClient.open(t, h.port);
  const segments: [string, string][] = [
    ['temp room', 'temp%20room'], ['50%', '50%25'], ['ü', '%C3%BC'], ['x#y', 'x%23y'], ['a&b=c', 'a%26b%3Dc'],
    // RFC 7252 section 6.4: a Uri-Path option is one segment, whatever characters it holds.
    ['a/b', 'a%2Fb'], ['a?b', 'a%3Fb'],
  ];
  for (const [segment, encoded] of segments) {
    const { code, forwarded } = await rawExchange(h, client, { method: 'POST', path: ['telemetry', segment], accessToken });
    t.equal(code, '2.01', `${JSON.stringify(segment)} is routed as {name}`);
    t.equal(forwarded, `/devices/sensor-1/telemetry/${encoded}`, `${JSON.stringify(segment)} -> ${encoded}`);
  }
  await h.assertStillServes(t);
});

t.test('one Uri-Query option holding & stays one pair', async (t) => {
  const h = await startHarness(t);
  const accessToken = await loginToken(h, 'sensor-1');
  const client = await RawCoapClient.open(t, h.port);
  const { code, forwarded } = await rawExchange(h, client, { path: ['config'], query: ['q=a&b', 'k=v'], accessToken });
  t.equal(code, '2.05');
  t.equal(forwarded, '/devices/sensor-1/config?q=a%26b&k=v', 'the & is data, encoded as %26');
  await h.assertStillServes(t);
});

t.test('a dot segment in a path parameter never climbs out of the backend path template', async (t) => {
  const h = await startHarness(t);
  const accessToken = await loginToken(h, 'sensor-1');
  const client = await RawCoapClient.open(t, h.port);
  // RFC 3986 section 5.2.4: a backend (or a proxy before it) resolves /devices/x/telemetry/.. to /devices/x.
  for (const segment of ['..', '.']) {
    const { code, forwarded } = await rawExchange(h, client, { method: 'POST', path: ['telemetry', segment], accessToken });
    t.ok(forwarded === undefined ? code.startsWith('4.') : !/\/\.\.?(\/|\?|$)/.test(forwarded),
      `${JSON.stringify(segment)}: refused (got ${code}) or encoded (forwarded as ${forwarded})`);
  }
  await h.assertStillServes(t);
});

t.test('GET /.well-known/core: RFC 6690 link format listing /auth and the routes', async (t) => {
  const h = await startHarness(t);
  // A device that has not logged in discovers the resources too, after proving its address: the
  // listing is larger than the request, so the first answer is 4.01 with an Echo value to repeat
  // (RFC 7252 section 11.3, RFC 9175 section 2.4). node-coap does not do that round trip itself.
  const agent = await openNodeCoapAgent(t);
  const challenge = await nodeCoapRequest(agent, h.port, { path: '/.well-known/core' });
  t.equal(challenge.code, '4.01', 'first: 4.01');
  t.equal(challenge.payload.length, 0, 'without a body');
  t.ok(challenge.echo !== undefined && challenge.echo.length > 0, 'with an Echo option');
  const answer = await nodeCoapRequest(agent, h.port, { path: '/.well-known/core', ...(challenge.echo === undefined ? {} : { echo: challenge.echo }) });
  t.equal(answer.code, '2.05', 'the request repeated with the Echo value: the listing');
  t.equal(answer.headers['Content-Format'], 'application/link-format');
  const links = answer.payload.toString('utf8').split(',');
  const targets = links.map((link) => /^<([^>]+)>(;[^;]+)*$/.exec(link)?.[1]);
  t.notOk(targets.includes(undefined), 'every link is <target>;attr=value...');
  for (const target of ['/auth', '/auth/refresh', '/config']) t.ok(targets.includes(target), `lists ${target}`);
  t.notOk(targets.some((target) => target?.startsWith('/telemetry')), 'no templated route: its prefix would answer 4.04');
  t.equal(h.backend.requests.length, 0, 'answered by the gateway');
  const post = await nodeCoapRequest(agent, h.port, { method: 'POST', path: '/.well-known/core' });
  t.equal(post.code, '4.05', 'POST: 4.05 (an error answer, no larger than the request, needs no Echo)');
  await h.assertStillServes(t);
});

t.test('a slow backend answer arrives as a separate response (RFC 7252 section 5.2.2)', async (t) => {
  const h = await startHarness(t, { config: { piggybackReplyMs: 20 } });
  const token = await loginToken(h, 'sensor-1');
  const client = await RawCoapClient.open(t, h.port);
  const slow = holdingHandler();
  h.backend.setHandler(slow.handler);
  const tok = Buffer.from('5e9a', 'hex');
  await client.send(rawRequest({ path: ['config'], accessToken: token, messageId: 0x0501, token: tok }));
  await h.backend.waitForRequests(1);
  const ack = await client.next(isEmptyAck(0x0501), 'the empty ACK');
  t.equal(ack.token.length, 0, 'the empty ACK carries no token');
  slow.release();
  const separate = await client.next(isAnswerTo(tok), 'the separate response');
  await client.ack(separate);
  t.equal(separate.code, '2.05');
  t.ok(separate.confirmable, 'sent confirmable');
  t.equal(uintOption(separate, 'Content-Format'), 60);
  t.same(plain(cbor.decode(separate.payload)), { ok: true, path: '/devices/sensor-1/config' });
  t.equal(h.backend.requests.length, 1);
  await h.assertStillServes(t);
});

t.test('unknown critical option -> 4.02 before the backend; unknown elective option is ignored', async (t) => {
  const h = await startHarness(t);
  const token = await loginToken(h, 'sensor-1');
  const client = await RawCoapClient.open(t, h.port);
  const critical = Buffer.from('c0', 'hex');
  await client.send(rawRequest({ path: ['config'], accessToken: token, messageId: 1, token: critical, extraOptions: [{ name: '65001', value: Buffer.from('x') }] }));
  const refused = await client.next(isAnswerTo(critical), 'answer with option 65001');
  t.equal(refused.code, '4.02');
  // The request (with its token) is far larger than the error body, so the body must be there (error bodies are left out only where they would outgrow the request).
  t.equal(refused.payload.length > 0 ? wireCode(cbor.decode(refused.payload)) : 'no body', WireError.badOption, 'error body {0: bad option}');
  const twice = Buffer.from('c1', 'hex');
  await client.send(rawRequest({ path: ['config'], accessToken: token, messageId: 3, token: twice, extraOptions: [{ name: '65003', value: Buffer.from(token) }] }));
  t.equal((await client.next(isAnswerTo(twice), 'answer with two Access-Token options')).code, '4.02', 'a repeated Access-Token option is refused');
  t.equal(h.backend.requests.length, 0, 'never reached the backend');

  const elective = Buffer.from('e0', 'hex');
  await client.send(rawRequest({ path: ['config'], accessToken: token, messageId: 2, token: elective, extraOptions: [{ name: '65000', value: Buffer.from('x') }] }));
  const served = await client.next(isAnswerTo(elective), 'answer with option 65000');
  t.equal(served.code, '2.05');
  t.equal(h.backend.requests.length, 1);
  await h.assertStillServes(t);
});

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Decoder, Encoder } from 'cbor-x';
import { decodeJwt } from 'jose';
import t, { type Test } from 'tap';
import { ACCESS_TOKEN_OPTION, AuthRequestKey, AuthResponseKey, ErrorKey, WireError } from '../../gateway/src/wire/index.ts';
import { startHarness, type Harness } from '../helpers/harness.ts';
import { forwardedClaims, jtiOf } from '../helpers/backend-jwt.ts';

// Interoperability with an independent CoAP implementation: libcoap's C client (Debian package
// libcoap3-bin). Everything node-coap might get wrong in the same way on both ends shows up here.

const CLIENT = 'coap-client-notls';
const run = promisify(execFile);
const cbor = new Encoder({ mapsAsObjects: false, useRecords: false });
const decoder = new Decoder({ mapsAsObjects: false, useRecords: false });

interface ClientAnswer {
  code: string;
  contentFormat: string | undefined;
  /** The response payload: from `-o` on 2.xx; libcoap prints error payloads to stderr instead. */
  payload: Buffer;
  stderr: string;
}

const clientInstalled = run('/bin/sh', ['-c', `command -v ${CLIENT}`]).then(() => true, () => false);

/** Fails (never skips) when the C client is missing: CI installs it with `make tools`. */
async function requireClient(t: Test): Promise<boolean> {
  if (await clientInstalled) return true;
  t.fail(`${CLIENT} is not installed: install the Debian package libcoap3-bin `
    + '(apt-get install -y libcoap3-bin, or `make tools`) to run the CoAP interoperability test');
  return false;
}

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gw-interop-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Runs one request through coap-client-notls. `-v 6` makes libcoap print every PDU it sends and
 * receives (`v:1 t:ACK c:2.01 i:... [ Content-Format:... ]`), which is where the response code is
 * read from: the client exits 0 for 4.xx answers too.
 */
async function coapClient(dir: string, h: Harness, path: string, args: string[]): Promise<ClientAnswer> {
  const out = join(dir, `out-${Math.random().toString(36).slice(2)}.bin`);
  const { stdout, stderr } = await run(CLIENT, ['-v', '6', '-B', '5', '-o', out, ...args, `coap://127.0.0.1:${h.port}${path}`],
    { timeout: 10_000, encoding: 'utf8', maxBuffer: 1024 * 1024 });
  const responses = [...stdout.matchAll(/^v:1 t:(?:ACK|CON|NON) c:(\d\.\d\d) i:\S+ \S* ?\[([^\]]*)\]/gm)]
    .filter((m) => m[1] !== '0.00');
  const last = responses.at(-1);
  if (last === undefined) throw new Error(`no CoAP response in ${CLIENT} output:\n${stdout}\n${stderr}`);
  const payload = await readFile(out).catch(() => Buffer.alloc(0));
  return { code: last[1]!, contentFormat: /Content-Format:([^,\s]+)/.exec(last[2]!)?.[1], payload, stderr };
}

async function loginWithClient(t: Test, h: Harness, dir: string, id: string): Promise<Map<number, unknown>> {
  const secret = await h.provision(id);
  const loginFile = join(dir, 'login.cbor');
  await writeFile(loginFile, cbor.encode(new Map<number, unknown>([[AuthRequestKey.deviceId, id], [AuthRequestKey.secret, secret]])));
  const answer = await coapClient(dir, h, '/auth', ['-m', 'post', '-t', '60', '-f', loginFile]);
  t.equal(answer.code, '2.01', 'login through libcoap: 2.01');
  t.equal(answer.contentFormat, 'application/cbor', 'Content-Format 60 as libcoap reads it');
  const body = decoder.decode(answer.payload) as Map<number, unknown>;
  t.ok(body instanceof Map, 'the 2.01 payload is a CBOR map');
  t.same([...body.keys()].sort(), [1, 2, 3, 4], 'integer keys 1-4');
  return body;
}

t.test('libcoap client: login, then a tokened POST reaches the backend as JSON', async (t) => {
  if (!(await requireClient(t))) return;
  const h = await startHarness(t);
  const dir = await tempDir(t);
  const body = await loginWithClient(t, h, dir, 'c-sensor-1');
  const accessToken = body.get(AuthResponseKey.accessToken) as string;
  t.equal(decodeJwt(accessToken).sub, 'c-sensor-1', 'the access token names the device');

  const telemetryFile = join(dir, 'telemetry.cbor');
  const raw = Buffer.from([0x01, 0x02, 0xff]);
  await writeFile(telemetryFile, cbor.encode(new Map<string, unknown>([['celsius', 21.5], ['raw', raw], ['ok', true]])));
  const answer = await coapClient(dir, h, '/telemetry/temp',
    ['-m', 'post', '-t', '60', '-f', telemetryFile, '-O', `${ACCESS_TOKEN_OPTION},${accessToken}`]);
  t.equal(answer.code, '2.01', 'tokened POST: 2.01');
  t.equal(answer.contentFormat, 'application/cbor');
  t.equal((decoder.decode(answer.payload) as Map<string, unknown>).get('path'), '/devices/c-sensor-1/telemetry/temp',
    'the backend JSON answer came back as CBOR');
  t.equal(h.backend.requests.length, 1, 'one backend request');
  const req = h.backend.requests[0]!;
  t.equal(req.method, 'POST');
  t.equal(req.url, '/devices/c-sensor-1/telemetry/temp');
  t.equal((await forwardedClaims(h, req)).jti, jtiOf(accessToken), 'the whole token went through option 65003 (the backend got its JWT)');
  t.equal(req.headers['x-device-id'], 'c-sensor-1');
  t.equal(req.headers['content-type'], 'application/json');
  t.strictSame(JSON.parse(req.body.toString('utf8')), { celsius: 21.5, raw: raw.toString('base64url'), ok: true });
});

t.test('libcoap client: a request without a token gets 4.01 and never reaches the backend', async (t) => {
  if (!(await requireClient(t))) return;
  const h = await startHarness(t);
  const dir = await tempDir(t);
  await loginWithClient(t, h, dir, 'c-sensor-2');
  const answer = await coapClient(dir, h, '/telemetry/temp', ['-m', 'post', '-t', '60', '-e', 'no token here']);
  t.equal(answer.code, '4.01', 'no Access-Token option: 4.01');
  t.equal(answer.contentFormat, 'application/cbor', 'with a CBOR error body');
  t.match(answer.stderr, /^4\.01 /m, 'libcoap reports the 4.01');
  t.equal(h.backend.requests.length, 0, 'the backend got nothing');
  await h.assertStillServes(t);
  // libcoap prints the error payload as text (non-printables as '.'), so only its shape is checked above;
  // the wire code itself is read by node-coap: the same request as bytes gives tokenMissing.
  const device = await h.device();
  const again = await device.send({ method: 'POST', path: '/telemetry/temp', payload: Buffer.from('no token here'), contentFormat: 60 });
  t.equal((again.body as Map<number, unknown>).get(ErrorKey.code), WireError.tokenMissing);
});

t.test('libcoap client: /.well-known/core is RFC 6690 link format', async (t) => {
  if (!(await requireClient(t))) return;
  const h = await startHarness(t);
  const dir = await tempDir(t);
  const answer = await coapClient(dir, h, '/.well-known/core', []);
  t.equal(answer.code, '2.05');
  t.equal(answer.contentFormat, 'application/link-format', 'Content-Format 40');
  const text = answer.payload.toString('utf8');
  // RFC 6690 section 2: link-value = "<" URI-Reference ">" *( ";" link-param ), separated by ",".
  const links = text.split(',');
  for (const link of links) t.match(link, /^<\/[^<>]*>(;[a-z]+(=("[^"]*"|[^;,"]+))?)*$/, `link-value: ${link}`);
  const targets = links.map((link) => /^<([^>]*)>/.exec(link)?.[1]);
  // A templated route has no concrete path to list (its literal prefix would answer 4.04).
  t.same(targets, ['/auth', '/auth/refresh', '/auth/nonce', '/config'], 'the gateway resources and the concrete bridged routes');
  t.ok(links.every((link) => link.includes(';ct=60')), 'each says ct=60 (CBOR)');
});

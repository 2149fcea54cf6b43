import t, { type Test } from 'tap';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeDevPki } from '../../certs/pki.ts';
import { ErrorKey, WireError } from '../../gateway/src/wire/index.ts';
import { startHarness, type Harness } from '../helpers/harness.ts';

// The backend is a real HTTPS server whose certificate the dev CA signed (certs/dev-pki.ts);
// the gateway trusts it only through `backendCa`, never by turning verification off.

const dir = await mkdtemp(join(tmpdir(), 'gw-pki-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));
const { paths } = makeDevPki(dir);
const backendTls = {
  key: await readFile(paths.backend.keyPath, 'utf8'),
  cert: await readFile(paths.backend.certPath, 'utf8'),
};

async function postTelemetry(h: Harness) {
  const secret = await h.provision('sensor-1');
  const device = await h.device();
  const { tokens } = await device.login('sensor-1', secret);
  return device.send({ method: 'POST', path: '/telemetry/temp', token: tokens!.accessToken, body: new Map([[1, 21.5]]) });
}

t.test('HTTPS backend signed by the configured CA: the request is bridged', async (t) => {
  const h = await startHarness(t, { backendTls, config: { backendCa: paths.ca.certPath } });
  t.match(h.backend.url, /^https:\/\//, 'the backend speaks TLS');
  const answer = await postTelemetry(h);
  t.equal(answer.code, '2.01');
  t.equal(h.backend.requests.length, 1);
  t.equal(h.backend.requests[0]?.url, '/devices/sensor-1/telemetry/temp');
  t.same(JSON.parse(h.backend.requests[0]!.body.toString()), { 1: 21.5 });
  await h.assertStillServes(t);
});

/** The gateway keeps serving what needs no backend: logins and its own resources. */
async function assertStillServesLocally(t: Test, h: Harness) {
  const secret = await h.provision('sensor-2');
  const device = await h.device();
  const { answer, tokens } = await device.login('sensor-2', secret);
  t.equal(answer.code, '2.01', 'still logs devices in');
  // With the new Access-Token: the listing is larger than the request (RFC 7252 section 11.3).
  const listing = await device.send({ path: '/.well-known/core', token: tokens?.accessToken ?? null });
  t.equal(listing.code, '2.05', 'still answers /.well-known/core');
}

t.test('HTTPS backend without backendCa: certificate not trusted -> 5.02, nothing sent', async (t) => {
  const h = await startHarness(t, { backendTls });
  const answer = await postTelemetry(h);
  t.equal(answer.code, '5.02');
  t.equal((answer.body as Map<number, unknown>).get(ErrorKey.code), WireError.badGateway);
  t.equal(h.backend.requests.length, 0, 'the TLS handshake failed before any request');
  await assertStillServesLocally(t, h);
});

t.test('HTTPS backend with the wrong CA (the admin CA) -> 5.02', async (t) => {
  const h = await startHarness(t, { backendTls, config: { backendCa: paths.adminCa.certPath } });
  const answer = await postTelemetry(h);
  t.equal(answer.code, '5.02');
  t.equal(h.backend.requests.length, 0);
  await assertStillServesLocally(t, h);
});

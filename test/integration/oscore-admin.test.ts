import t from 'tap';
import { adminRequest, makeAdminPki, type AdminPki } from '../helpers/admin-client.ts';
import { startHarness } from '../helpers/harness.ts';

// OSCORE contexts through the admin API of a running gateway (mutual TLS): made with a new device
// or for one that has none, rotated, answered once and never listed, dropped by revoke; every bad
// input gets its status and code. The CLI's side is oscore-cli.test.ts.

const HEX = (bytes: number) => new RegExp(`^[0-9a-f]{${bytes * 2}}$`);
const hexOf = (base64url: string) => Buffer.from(base64url, 'base64url').toString('hex');

let pki: AdminPki;
t.before(async () => {
  pki = await makeAdminPki(t);
});

t.test('admin API: "oscore": true provisions a context, answered once; POST /devices/ID/oscore makes or rotates one; never listed', async (t) => {
  const h = await startHarness(t, { config: pki.config });
  const ports = h.gateway.adminAddress()!;
  const api = (method: string, path: string, body?: unknown) => adminRequest(ports.port, method, path, { tls: pki.client, ...(body !== undefined ? { body } : {}) });
  const store = h.gateway.store;

  const created = await api('POST', '/devices', { id: 'radio-1', oscore: true, security: 'oscore' });
  t.equal(created.status, 201);
  const body = created.json() as { oscore: Record<string, string>; aiocoap: Record<string, string> };
  t.match(body, {
    id: 'radio-1', scopes: ['telemetry:write'], security: 'oscore',
    oscore: { senderId: HEX(1), recipientId: '', masterSecret: HEX(16), masterSalt: HEX(8), algorithm: 'AES-CCM-16-64-128', kdf: 'HKDF-SHA-256' },
  });
  t.notOk('secret' in body, 'no secret unless asked for: the context is the credential');
  t.strictSame(body.aiocoap, {
    'sender-id_hex': body.oscore.senderId!, 'recipient-id_hex': '', 'secret_hex': body.oscore.masterSecret!, 'salt_hex': body.oscore.masterSalt!,
    algorithm: 'AES-CCM-16-64-128',
  }, 'and as aiocoap\'s settings.json');
  const record = (await store.devices.get('radio-1'))!;
  t.equal(hexOf(record.oscore!.masterSecret), body.oscore.masterSecret, 'the answer is the stored context');
  t.equal(record.security, 'oscore');
  t.equal(await store.devices.idOfSender(body.oscore.senderId!), 'radio-1');
  t.equal(await store.oscoreWindows.accept(record.oscore!.generation, 0), 'fresh', 'its window is established: the first request needs no Echo recovery');

  const withSecret = await api('POST', '/devices', { id: 'radio-2', oscore: true, secret: true });
  t.equal(withSecret.status, 201);
  t.match(withSecret.json(), { secret: HEX(32), oscore: { senderId: HEX(1) } }, '"secret": true makes one too');
  t.notOk('security' in (withSecret.json() as object), 'either way by default');
  t.equal((await api('POST', '/devices', { id: 'later' })).status, 201);

  const again = await api('POST', '/devices/radio-1/oscore', {});
  t.equal(again.status, 409, 'a second context without "rotate": refused');
  t.match(again.json(), { error: 'GW_ERR_ADMIN_CONFLICT', message: /has an OSCORE context already .*"rotate": true/ });
  const rotated = await api('POST', '/devices/radio-1/oscore', { rotate: true });
  t.equal(rotated.status, 201);
  t.match(rotated.json(), { device: 'radio-1', rotated: true, security: 'oscore', oscore: { senderId: body.oscore.senderId } }, 'the same Sender ID');
  t.not((rotated.json() as typeof body).oscore.masterSecret, body.oscore.masterSecret, 'a new master secret');
  t.equal(await store.oscoreWindows.accept(record.oscore!.generation, 1), 'unknown', 'the old context\'s window is gone');
  const made = await api('POST', '/devices/later/oscore', { security: 'oscore' });
  t.equal(made.status, 201);
  t.match(made.json(), { device: 'later', rotated: false, security: 'oscore', oscore: { senderId: HEX(1), masterSecret: HEX(16) } });
  const relaxed = await api('POST', '/devices/radio-1/oscore', { security: 'any' });
  t.equal(relaxed.status, 200, '"security" alone changes only that');
  t.same(relaxed.json(), { device: 'radio-1', security: 'any' });
  t.equal((await store.devices.get('radio-1'))!.security, undefined);

  const bad: [string, string, unknown, number, string, RegExp][] = [
    ['POST', '/devices', { id: 'x-1', security: 'oscore' }, 400, 'GW_ERR_ADMIN_BAD_BODY', /needs an OSCORE context too/],
    ['POST', '/devices', { id: 'x-2', oscore: 'yes' }, 400, 'GW_ERR_ADMIN_BAD_BODY', /"oscore" must be true or false/],
    ['POST', '/devices', { id: 'x-3', oscore: true, security: 'always' }, 400, 'GW_ERR_ADMIN_BAD_BODY', /security must be "oscore" or "any"/],
    ['POST', '/devices', { id: 'radio-1', oscore: true }, 409, 'GW_ERR_ADMIN_DUPLICATE_DEVICE', /already exists/],
    ['POST', '/devices/nobody/oscore', {}, 404, 'GW_ERR_ADMIN_UNKNOWN_DEVICE', /no device "nobody"/],
    ['POST', '/devices/later/oscore', { rotate: 1 }, 400, 'GW_ERR_ADMIN_BAD_BODY', /"rotate" must be true or false/],
    ['POST', '/devices/bad%20id!/oscore', {}, 400, 'GW_ERR_ADMIN_BAD_DEVICE_ID', /bad device id/],
  ];
  for (const [method, path, input, status, code, message] of bad) {
    const answer = await api(method, path, input);
    const what = `${method} ${path} ${JSON.stringify(input)}`;
    t.equal(answer.status, status, `${what}: ${status}`);
    t.match(answer.json(), { error: code, message }, `${what}: ${code}, saying why`);
  }

  const listed = await api('GET', '/devices');
  const held = await Promise.all(['radio-1', 'radio-2', 'later'].map((id) => store.devices.get(id)));
  const secrets = held.flatMap((d) => [d!.oscore!.masterSecret, d!.oscore!.masterSalt, hexOf(d!.oscore!.masterSecret), hexOf(d!.oscore!.masterSalt)]);
  t.same(secrets.filter((secret) => listed.text.includes(secret)), [], 'GET /devices holds no master secret or salt');
  t.notMatch(listed.text, /masterSecret|masterSalt|generation/);
  t.match(listed.json(), [
    { id: 'later', security: 'oscore', oscore: { senderId: held[2]!.oscore!.senderId, createdAt: String } },
    { id: 'radio-1', oscore: { senderId: body.oscore.senderId } },
    { id: 'radio-2', secret: true, oscore: { senderId: held[1]!.oscore!.senderId } },
  ], 'each listed by its Sender ID');

  t.equal((await api('POST', '/devices/radio-2/revoke')).status, 204);
  t.equal((await store.devices.get('radio-2'))!.oscore, undefined, 'revoke drops the context');
  t.equal(await store.devices.idOfSender(held[1]!.oscore!.senderId), undefined, 'and its Sender ID is no device\'s');
  t.equal((await api('DELETE', '/devices/later')).status, 204);
  t.equal(await store.oscoreWindows.accept(held[2]!.oscore!.generation, 0), 'unknown', 'a removed device\'s window is gone');
  await h.assertStillServes(t);
});

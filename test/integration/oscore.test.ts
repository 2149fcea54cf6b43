import { decodeJwt } from 'jose';
import t, { type Test } from 'tap';
import { generate } from 'coap-packet';
import { AuthRequestKey, AuthResponseKey, ContentFormat, ErrorKey, WireError, decodeCbor, encodeCbor } from '../../gateway/src/wire/index.ts';
import { OSCORE_OPTION } from '../../gateway/src/wire/oscore/index.ts';
import { runCli } from '../helpers/cli-run.ts';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.ts';
import { OscoreUdpDevice, innerRequest, replayed, withKid, type Exchanged, type OscoreCredentials } from '../helpers/oscore-udp.ts';
import { sampleValue } from '../helpers/admin-prometheus.ts';
import { UdpProbe } from '../helpers/udp-probe.ts';

// OSCORE (RFC 8613) on the device leg, against the real gateway process on the file store:
// devices provisioned with `gateway devices add --oscore` as an operator would, requests sent as
// exact datagrams from a bare socket, readings checked where they arrive (the HTTP backend).

interface Provisioned { device: string; oscore: OscoreCredentials; secret?: string }

const cbor = (body: Map<number, unknown>) => encodeCbor(body);
const errorCode = (answer: { payload: Buffer }) => (decodeCbor(answer.payload) as Map<number, number>).get(ErrorKey.code);
const CBOR_FORMAT = { number: 12, value: Buffer.from([ContentFormat.cbor]) };
/** How long a CLI change may take to reach the gateway process (its journal watcher): a failure guard. */
const PICKUP_LIMIT_MS = 5000;

/** Repeats a request (each a real exchange, a new sequence number) until its answer is `code`, or the limit passes. */
async function untilAnswered(ask: () => Promise<Exchanged>, code: string): Promise<Exchanged> {
  const until = Date.now() + PICKUP_LIMIT_MS;
  for (;;) {
    const answer = await ask();
    if ((answer.inner?.code ?? answer.reply.code) === code || Date.now() > until) return answer;
  }
}

async function provision(t: Test, gw: GatewayProcess, args: string[]): Promise<Provisioned> {
  const result = await runCli([...args, '--state', gw.stateDir]);
  t.equal(result.code, 0, `${args.join(' ')}: exit 0 (${result.stderr.trim()})`);
  return JSON.parse(result.stdout) as Provisioned;
}

/** A request the context authenticates; the first after provisioning recovers the window with Echo (file store). */
async function firstRequest(t: Test, device: OscoreUdpDevice, path: string, payload: Buffer): Promise<Exchanged> {
  const answer = await device.request(innerRequest('0.02', path, [CBOR_FORMAT], payload));
  t.ok(answer.recovered, 'the first request: an Echo round trip re-establishes the replay window (Appendix B.1.2)');
  return answer;
}

t.test('OSCORE against the gateway process', async (t) => {
  const gw = await startGatewayProcess(t, { devices: 1, admin: true });
  const [ox, other] = await Promise.all([
    provision(t, gw, ['devices', 'add', 'ox-1', '--oscore', '--with-secret', '--security', 'oscore', '--scope', 'telemetry:write', 'config:read']),
    provision(t, gw, ['devices', 'add', 'ox-2', '--oscore', '--scope', 'telemetry:write']),
  ]);
  t.not(ox.oscore.senderId, other.oscore.senderId, 'each device its own Sender ID');
  t.equal(ox.oscore.senderId.length, 2, 'a 1-byte Sender ID for the first devices');
  const device = await OscoreUdpDevice.open(t, gw.port, ox.oscore);
  const reading = cbor(new Map([[1, 21.5]]));

  await t.test('a tokenless reading: authenticated by the context, bridged whole, the backend told sec=oscore', async (t) => {
    const before = gw.backend.requests.length;
    const answer = await firstRequest(t, device, '/telemetry/temp', reading);
    t.equal(answer.reply.code, '2.04', 'outer 2.04');
    t.equal(answer.inner?.code, '2.01', 'inner 2.01 Created');
    t.ok(answer.datagram.length <= 70, `a 3-byte reading to /telemetry/temp is ${answer.datagram.length} bytes on the wire (<= 70, one 802.15.4 frame)`);
    await gw.backend.waitForRequests(before + 1);
    const arrived = gw.backend.requests[before]!;
    t.equal(arrived.url, '/devices/ox-1/telemetry/temp');
    t.same(JSON.parse(arrived.body.toString()), { 1: 21.5 }, 'the reading as JSON');
    const jwt = decodeJwt(String(arrived.headers.authorization).replace(/^Bearer /, ''));
    t.equal(jwt.sub, 'ox-1');
    t.equal(jwt.sec, 'oscore', 'claim sec: how the request was protected');
    t.equal(jwt.scope, 'telemetry:write config:read', 'the record\'s scopes');
    const line = await gw.logLine((l) => l.protection === 'oscore' && l.code === '2.04' && l.deviceId === 'ox-1');
    t.match(line, { method: 'POST', path: '/telemetry/temp', route: '/telemetry/{name}' }, 'the log line has the inner method and path');
  });

  await t.test('GET /config under OSCORE: 2.05 inside, Max-Age inside', async (t) => {
    const answer = await device.request(innerRequest('0.01', '/config'));
    t.equal(answer.recovered, false, 'the window is held now: no Echo');
    t.equal(answer.inner?.code, '2.05');
  });

  await t.test('login, a tokened reading and a refresh under OSCORE; in clear all three are refused for this device', async (t) => {
    const secret = Buffer.from(ox.secret!, 'hex');
    const login = await device.request(innerRequest('0.02', '/auth', [CBOR_FORMAT], cbor(new Map<number, unknown>([[AuthRequestKey.deviceId, 'ox-1'], [AuthRequestKey.secret, secret]]))));
    t.equal(login.inner?.code, '2.01', 'login under OSCORE');
    const tokens = decodeCbor(login.inner!.payload) as Map<number, unknown>;
    const accessToken = tokens.get(AuthResponseKey.accessToken) as string;
    const refreshToken = tokens.get(AuthResponseKey.refreshToken) as Buffer;
    const before = gw.backend.requests.length;
    const tokened = await device.request(innerRequest('0.02', '/telemetry/temp', [CBOR_FORMAT, { number: 65003, value: Buffer.from(accessToken) }], reading));
    t.equal(tokened.inner?.code, '2.01', 'a tokened reading under OSCORE');
    await gw.backend.waitForRequests(before + 1);
    t.equal(decodeJwt(String(gw.backend.requests[before]!.headers.authorization).slice(7)).sec, 'oscore');
    const refreshed = await device.request(innerRequest('0.02', '/auth/refresh', [CBOR_FORMAT], cbor(new Map<number, unknown>([[AuthRequestKey.refreshToken, refreshToken]]))));
    t.equal(refreshed.inner?.code, '2.01', 'refresh under OSCORE');

    const clear = await gw.client();
    const inClear = await clear.login('ox-1', secret);
    t.equal(inClear.answer.code, '4.01', 'login in clear: 4.01');
    t.equal((inClear.answer.body as Map<number, number>).get(ErrorKey.code), WireError.oscoreRequired, 'wire code 24: OSCORE required');
    const tokenInClear = await clear.send({ method: 'POST', path: '/telemetry/temp', body: 1, token: accessToken });
    t.equal(tokenInClear.code, '4.01', 'its token, copied off the air and sent in clear: 4.01');
    t.equal((tokenInClear.body as Map<number, number>).get(ErrorKey.code), WireError.oscoreRequired);
    t.equal(gw.backend.requests.length, before + 1, 'nothing in clear reached the backend');
  });

  await t.test('a token of another device under this context: 4.01', async (t) => {
    const otherToken = await gw.login(0);
    const answer = await device.request(innerRequest('0.01', '/config', [{ number: 65003, value: Buffer.from(otherToken) }]));
    t.equal(answer.inner?.code, '4.01');
    t.equal(errorCode(answer.inner!), WireError.tokenInvalid);
  });

  await t.test('refusals (section 8.2), each in clear, none reaching the backend; the gateway still serves', async (t) => {
    const before = gw.backend.requests.length;
    const good = device.protect(innerRequest('0.02', '/telemetry/temp', [CBOR_FORMAT], reading));
    const raw = (option: Buffer, payload: Buffer) => generate({ code: '0.02', messageId: 0x7100 + option.length, token: Buffer.from('77', 'hex'), confirmable: true,
      options: [{ name: String(OSCORE_OPTION), value: option }], payload }, 65_535);
    // Each under a message ID of its own: one the good datagram shares would be answered as its retransmission.
    const flipped = replayed(good.datagram, 0x7201);
    flipped[flipped.length - 1]! ^= 0x01;
    // The same bytes under ox-2's kid: its context does not decrypt them.
    const otherKid = withKid(good.datagram, Buffer.from(other.oscore.senderId, 'hex'), 0x7202);
    const cases: [string, Buffer, string, number][] = [
      ['a flipped ciphertext bit', flipped, '4.00', WireError.oscoreDecryptFailed],
      ['an unknown kid', raw(Buffer.from('0901fe', 'hex'), Buffer.alloc(20, 1)), '4.01', WireError.oscoreUnknownContext],
      ['a malformed option (reserved bits)', raw(Buffer.from('e901', 'hex'), Buffer.alloc(20, 1)), '4.02', WireError.badOption],
      ['a Partial IV of 6 bytes', raw(Buffer.from('0e010203040506' + ox.oscore.senderId, 'hex'), Buffer.alloc(20, 1)), '4.02', WireError.badOption],
      ['another device\'s kid', otherKid, '4.00', WireError.oscoreDecryptFailed],
    ];
    for (const [what, datagram, code, wire] of cases) {
      const answer = await device.exchange(datagram, good.binding);
      t.equal(answer.reply.code, code, `${what}: ${code}`);
      t.equal(answer.inner, undefined, `${what}: in clear`);
      t.equal(errorCode(answer.reply), wire, `${what}: wire code ${wire}`);
      t.ok(answer.reply.payload.length + 4 <= datagram.length, `${what}: the answer no larger than the request`);
    }
    t.equal(gw.backend.requests.length, before, 'none reached the backend');
    const secrets = [ox.oscore.masterSecret, Buffer.from(ox.oscore.masterSecret, 'hex').toString('base64url'), ox.oscore.masterSalt];
    const text = JSON.stringify(await gw.logLines());
    t.notOk(secrets.some((secret) => text.includes(secret)), 'no master secret or salt in any log line');
    const served = await device.exchange(good.datagram, good.binding);
    t.equal(served.inner?.code, '2.01', 'the untampered datagram is still served');
    await gw.assertStillServes(t);
  });

  await t.test('a replayed datagram is refused 4.01 and reaches the backend once; a retransmitted CON gets the same answer', async (t) => {
    const before = gw.backend.requests.length;
    const sent = device.protect(innerRequest('0.02', '/telemetry/temp', [CBOR_FORMAT], reading));
    const first = await device.exchange(sent.datagram, sent.binding);
    t.equal(first.inner?.code, '2.01');
    const retransmitted = await device.exchange(sent.datagram, sent.binding);
    t.same(retransmitted.reply.payload, first.reply.payload, 'a retransmission (same message ID): the stored protected answer');
    const attacker = await UdpProbe.open(t, { address: '127.0.0.1', port: gw.port });
    await attacker.send(replayed(sent.datagram, 0x7e01));
    const refused = await attacker.next((p) => p.messageId === 0x7e01, 'the replay\'s answer');
    t.equal(refused.code, '4.01', 'a replay from another address: 4.01');
    t.equal(errorCode(refused), WireError.oscoreReplay, 'wire code 23');
    await gw.backend.waitForRequests(before + 1);
    t.equal(gw.backend.requests.length, before + 1, 'the reading reached the backend once');
    const metrics = await gw.metrics();
    t.ok((sampleValue(metrics, 'coap_gateway_oscore_replays_total') ?? 0) >= 1, 'counted as a replay');
    t.ok((sampleValue(metrics, 'coap_gateway_oscore_echo_recoveries_total') ?? 0) >= 1, 'the Echo recovery counted');
    t.ok((sampleValue(metrics, 'coap_gateway_oscore_requests_total', { outcome: 'ok' }) ?? 0) >= 5, 'requests by outcome');
    t.equal(sampleValue(metrics, 'coap_gateway_oscore_contexts'), 2, 'two contexts held derived');
  });

  await t.test('a 3 KB inner block-wise upload under OSCORE reaches the backend whole', async (t) => {
    const body = Buffer.from(JSON.stringify({ samples: Array.from({ length: 300 }, (_, i) => i * 3) }).padEnd(3072, ' '));
    const payload = cbor(new Map([[1, body.toString()]]));
    const before = gw.backend.requests.length;
    let last: Exchanged | undefined;
    for (let num = 0; num * 512 < payload.length; num += 1) {
      const more = (num + 1) * 512 < payload.length;
      const block1 = { number: 27, value: Buffer.from(num < 16 ? [num * 16 + (more ? 8 : 0) + 5] : [(num * 16 + (more ? 8 : 0) + 5) >> 8, (num * 16 + (more ? 8 : 0) + 5) & 0xff]) };
      last = await device.request(innerRequest('0.02', '/telemetry/bulk', [CBOR_FORMAT, block1], payload.subarray(num * 512, (num + 1) * 512)));
      t.equal(last.inner?.code, more ? '2.31' : '2.01', `block ${num}: ${last.inner?.code}`);
    }
    await gw.backend.waitForRequests(before + 1);
    t.same(JSON.parse(gw.backend.requests[before]!.body.toString()), { 1: body.toString() }, 'the body whole');
  });

  await t.test('after a gateway restart the next request gets the Echo recovery, then succeeds; the replay window holds again', async (t) => {
    await gw.restart();
    const again = await OscoreUdpDevice.open(t, gw.port, ox.oscore, device.sequenceNumber);
    const before = gw.backend.requests.length;
    const answer = await again.request(innerRequest('0.02', '/telemetry/temp', [CBOR_FORMAT], reading));
    t.ok(answer.recovered, 'a protected 4.01 with Echo first (the restarted gateway holds no window)');
    t.equal(answer.inner?.code, '2.01', 'then served');
    await gw.backend.waitForRequests(before + 1);
    t.equal(gw.backend.requests.length, before + 1, 'the challenged request was not acted on: one reading');
    const replay = await again.exchange(replayed(answer.datagram, 0x7301), answer.binding);
    t.equal(replay.reply.code, '4.01', 'the recovered request replayed: refused');
    t.equal(errorCode(replay.reply), WireError.oscoreReplay);
  });

  await t.test('a rotated context stops at once; the new one works; a removed device\'s context is unknown', async (t) => {
    const rotated = await provision(t, gw, ['devices', 'oscore', 'ox-2', '--rotate']);
    t.equal(rotated.oscore.senderId, other.oscore.senderId, 'the Sender ID stays');
    t.not(rotated.oscore.masterSecret, other.oscore.masterSecret, 'a new master secret');
    const stale = await OscoreUdpDevice.open(t, gw.port, other.oscore);
    const old = await untilAnswered(() => stale.request(innerRequest('0.01', '/telemetry/x')), '4.00');
    t.equal(old.reply.code, '4.00', 'the old context, once the gateway has the change: does not decrypt');
    const fresh = await OscoreUdpDevice.open(t, gw.port, rotated.oscore);
    const answer = await fresh.request(innerRequest('0.02', '/telemetry/x', [CBOR_FORMAT], reading));
    t.equal(answer.inner?.code, '2.01', 'the new context works');
    t.equal((await runCli(['devices', 'remove', 'ox-2', '--state', gw.stateDir])).code, 0);
    const gone = await untilAnswered(() => fresh.request(innerRequest('0.02', '/telemetry/x', [CBOR_FORMAT], reading)), '4.01');
    t.equal(gone.reply.code, '4.01', 'removed: unknown context');
    t.equal(errorCode(gone.reply), WireError.oscoreUnknownContext);
  });
});

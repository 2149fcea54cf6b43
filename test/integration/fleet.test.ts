import { join } from 'node:path';
import { decodeProtectedHeader } from 'jose';
import t, { type Test } from 'tap';
import { addFleet, gatewayCli } from '../../device-sim/src/spawn-gateway.ts';
import { sampleValue } from '../helpers/admin-prometheus.ts';
import { CHANGE_DEADLINE_MS, getConfig, untilAnswered } from '../helpers/fleet-changes.ts';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.ts';
import { startRedis } from '../helpers/redis-server.ts';
import { tempDir } from '../helpers/store-fixtures.ts';

// Three `gateway serve` processes on loopback sharing one real Redis: they act as one gateway.
const FAILED_LOGINS_PER_MINUTE = 4;

interface Fleet {
  redis: Awaited<ReturnType<typeof startRedis>>;
  gateways: GatewayProcess[];
  devices: { id: string; secret: Buffer }[];
}

async function startFleet(t: Test, deviceCount = 4): Promise<Fleet> {
  const redis = await startRedis(t);
  const dir = await tempDir(t, 'gw-fleet-');
  // Provisioned once, from "another host": only the store is shared, not a state directory.
  const devices = await addFleet(join(dir, 'devices.json'), deviceCount,
    ['--prefix', 'dev-', '--scope', 'telemetry:write', 'config:read', '--state', join(dir, 'cli-state'), '--store', redis.url]);
  const config = { loginFailuresPerMinute: FAILED_LOGINS_PER_MINUTE };
  const gateways = await Promise.all([0, 1, 2].map(() =>
    startGatewayProcess(t, { store: redis.url, provisioned: devices, admin: true, config })));
  return { redis, gateways, devices };
}

async function loginOn(gateway: GatewayProcess, device: { id: string; secret: Buffer }) {
  const client = await gateway.client();
  const { answer, tokens } = await client.login(device.id, device.secret);
  return { client, answer, tokens };
}

t.test('a token from A is accepted by B and C; a device removed through B is refused by A and C within 1 s', async (t) => {
  const { redis, gateways: [a, b, c], devices } = await startFleet(t);
  const { tokens } = await loginOn(a!, devices[0]!);
  t.ok(tokens, 'A logs the device in');
  const token = tokens!.accessToken;
  const clients = await Promise.all([a!, b!, c!].map((g) => g.client()));
  for (const [i, client] of clients.entries()) {
    t.equal((await getConfig(client, token)).code, '2.05', `gateway ${'ABC'[i]} bridges A's token`);
  }
  const removedAt = Date.now();
  t.equal((await b!.admin('DELETE', `/devices/${devices[0]!.id}`)).status, 204, 'removed through B\'s admin API');
  for (const [name, client] of [['A', clients[0]!], ['C', clients[2]!]] as const) {
    const elapsed = await untilAnswered(client, token, '4.01', removedAt);
    t.ok(elapsed <= CHANGE_DEADLINE_MS, `${name} refuses the removed device's cached token ${elapsed} ms after the removal`);
  }

  // The CLI, from a host with no gateway, reaches all of them too.
  const second = await loginOn(c!, devices[1]!);
  const token2 = second.tokens!.accessToken;
  t.equal((await getConfig(clients[0]!, token2)).code, '2.05', 'A bridges C\'s token');
  // The removal is done when the CLI exits (it takes a process start to get there).
  await gatewayCli(['devices', 'remove', devices[1]!.id, '--store', redis.url]);
  const cliRemovedAt = Date.now();
  for (const [name, client] of [['A', clients[0]!], ['B', clients[1]!], ['C', clients[2]!]] as const) {
    const elapsed = await untilAnswered(client, token2, '4.01', cliRemovedAt);
    t.ok(elapsed <= CHANGE_DEADLINE_MS, `${name} refuses a device removed by the CLI ${elapsed} ms after`);
  }
});

t.test('a refresh token spent on A is refused by C; failed logins count across the fleet', async (t) => {
  const { gateways: [a, b, c], devices } = await startFleet(t);
  const { client, tokens } = await loginOn(a!, devices[0]!);
  const next = await client.refresh(tokens!.refreshToken);
  t.equal(next.answer.code, '2.01', 'A refreshes once');
  const onC = await (await c!.client()).refresh(tokens!.refreshToken);
  t.equal(onC.answer.code, '4.01', 'C refuses the refresh token A spent');

  // Wrong secrets for one device id, spread over the three gateways.
  const wrong = Buffer.alloc(32, 7);
  const codes: string[] = [];
  for (let i = 0; i < FAILED_LOGINS_PER_MINUTE + 1; i += 1) {
    const gateway = [a!, b!, c!][i % 3]!;
    codes.push((await (await gateway.client()).login(devices[2]!.id, wrong)).answer.code);
  }
  t.same(codes.slice(0, FAILED_LOGINS_PER_MINUTE), Array(FAILED_LOGINS_PER_MINUTE).fill('4.01'), 'the first failures get 4.01');
  t.equal(codes.at(-1), '4.29', `failure ${FAILED_LOGINS_PER_MINUTE + 1}, on a third gateway, is over the fleet-wide limit`);
  await b!.assertStillServes(t);
});

t.test('a key rotated on A verifies on B and C and is in every JWKS; retiring it from C reaches A', async (t) => {
  const { gateways: [a, b, c], devices } = await startFleet(t);
  const rotated = await a!.admin('POST', '/keys/rotate', { alg: 'EdDSA' });
  t.equal(rotated.status, 201, 'A rotates');
  const kid = (JSON.parse(rotated.text) as { kid: string }).kid;
  const { tokens } = await loginOn(a!, devices[0]!);
  t.equal(decodeProtectedHeader(tokens!.accessToken).kid, kid, 'A signs with its new key');
  for (const [name, gateway] of [['B', b!], ['C', c!]] as const) {
    t.equal((await getConfig(await gateway.client(), tokens!.accessToken)).code, '2.05', `${name} verifies A's new key`);
  }
  for (const [name, gateway] of [['A', a!], ['B', b!], ['C', c!]] as const) {
    const jwks = JSON.parse((await gateway.admin('GET', '/.well-known/jwks.json')).text) as { keys: { kid: string }[] };
    t.ok(jwks.keys.some((k) => k.kid === kid), `${name}'s JWKS has A's new key`);
    t.ok(jwks.keys.length >= 4, `${name}'s JWKS has the fleet's keys (${jwks.keys.length})`);
  }
  // A's first key now only verifies; C retires it, and A's private key for it goes.
  const listed = JSON.parse((await a!.admin('GET', '/keys')).text) as { kid: string; state: string; gateway: string }[];
  const first = listed.find((k) => k.state === 'verifying')!;
  t.equal(new Set(listed.map((k) => k.gateway)).size, 3, 'A\'s GET /keys lists the fleet\'s keys, each with its holder');
  t.equal(listed.filter((k) => k.state === 'active').length, 3, 'one active key per gateway');
  t.equal((await c!.admin('POST', `/keys/${first.kid}/retire`)).status, 204, 'C retires a key A holds');
  const retiredAt = Date.now();
  for (;;) {
    const keys = JSON.parse((await a!.admin('GET', '/keys')).text) as { kid: string; state: string }[];
    if (keys.find((k) => k.kid === first.kid)?.state === 'retired' || Date.now() - retiredAt > 5000) break;
  }
  const keys = JSON.parse((await a!.admin('GET', '/keys')).text) as { kid: string; state: string }[];
  t.equal(keys.find((k) => k.kid === first.kid)?.state, 'retired', `A has retired it (${Date.now() - retiredAt} ms)`);
});

t.test('Redis stopped: cached tokens still bridged, logins 5.03; Redis back: logins work with no restart', async (t) => {
  const { redis, gateways: [a, b], devices } = await startFleet(t);
  const { client, tokens } = await loginOn(a!, devices[0]!);
  t.equal((await getConfig(client, tokens!.accessToken)).code, '2.05', 'the token is verified (and cached)');
  await redis.stop();
  t.equal((await getConfig(client, tokens!.accessToken)).code, '2.05', 'cached token still bridged with Redis down');
  const refused = await (await b!.client()).login(devices[1]!.id, devices[1]!.secret);
  t.equal(refused.answer.code, '5.03', 'a login gets 5.03 while Redis is down');
  t.ok(refused.answer.maxAgeSec !== undefined && refused.answer.maxAgeSec > 0, `with Max-Age (${refused.answer.maxAgeSec})`);
  const refresh = await client.refresh(tokens!.refreshToken);
  t.equal(refresh.answer.code, '5.03', 'a refresh gets 5.03 while Redis is down');
  await redis.start();
  const since = Date.now();
  let answer;
  do {
    answer = (await (await b!.client()).login(devices[1]!.id, devices[1]!.secret)).answer;
  } while (answer.code === '5.03' && Date.now() - since < 10_000);
  t.equal(answer.code, '2.01', `logins work again once Redis is back (${Date.now() - since} ms), no gateway restarted`);
  t.ok(a!.alive() && b!.alive(), 'no gateway crashed');
  const down = await a!.logLine((l) => String(l.msg).startsWith('store is down'));
  t.ok(down, 'A logged that the store went down');
  t.ok((sampleValue(await a!.metrics(), 'coap_gateway_store_outages_total') ?? 0) >= 1, 'and counted it');
});

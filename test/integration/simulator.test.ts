import { join } from 'node:path';
import t from 'tap';
import { createSocket } from 'node:dgram';
import type { Test } from 'tap';
import type { DeviceCredentials } from '../../device-sim/src/devices-file.ts';
import { runFleet, type FleetOptions } from '../../device-sim/src/fleet.ts';
import { FLEET_REPORT_SCHEMA_ID, formatFleetReport, validateFleetReport, type FleetReport } from '../../device-sim/src/report.ts';
import type { ScenarioName } from '../../device-sim/src/scenarios.ts';
import { addFleet } from '../../device-sim/src/spawn-gateway.ts';
import { generateSecret, hashSecret } from '../../gateway/src/auth/index.ts';
import { WireError } from '../../gateway/src/wire/index.ts';
import { startHarness, type Harness } from '../helpers/harness.ts';
import { tempDir } from '../helpers/store-fixtures.ts';

const FLEET_SIZE = 50;

/** Provisions `count` devices in one store write, as `gateway devices add --count` does. */
async function provisionFleet(h: Harness, count: number, scopes = ['telemetry:write']): Promise<DeviceCredentials[]> {
  const createdAt = new Date().toISOString();
  const fleet = Array.from({ length: count }, (_, i) => ({ id: `sim-${String(i + 1).padStart(3, '0')}`, secret: generateSecret() }));
  await h.gateway.store.devices.add(fleet.map(({ id, secret }) => ({ id, secretHash: hashSecret(secret), scopes, createdAt })));
  return fleet;
}

function fleetOptions(h: Harness, devices: DeviceCredentials[], scenario: ScenarioName, extra: Partial<FleetOptions> = {}): FleetOptions {
  return { host: '127.0.0.1', port: h.port, devices, scenario, count: 120, concurrency: 10, timeoutMs: 10_000, ...extra };
}

/** What every report must satisfy: schema, and counts that add up to what was sent. */
function checkReport(t: Test, report: FleetReport, sent: number): void {
  t.same(validateFleetReport(report), [], 'the report matches its schema');
  t.same(validateFleetReport(JSON.parse(JSON.stringify(report))), [], 'and so does its JSON');
  t.equal(report.schema, FLEET_REPORT_SCHEMA_ID);
  const r = report.requests;
  t.equal(r.sent, sent, `${sent} requests sent`);
  t.equal(r.answered + r.timeouts + r.errors, r.sent, 'answered + timeouts + errors = sent');
  t.equal(Object.values(r.byCode).reduce((a, b) => a + b, 0), r.answered, 'counts by code add up to the answers');
  t.ok(r.bytes.sentPerRequest > 0 && r.bytes.receivedPerRequest > 0, 'bytes per request counted');
  t.ok(formatFleetReport(report).some((line) => line.startsWith('latency ms')), 'the summary table has a latency row');
}

function expectAll(t: Test, report: FleetReport, code: string, wireError?: number): void {
  const n = report.requests.sent;
  t.same(report.requests.byCode, { [code]: n }, `every request answered ${code}`);
  t.equal(report.requests.asExpected, n, 'all as the scenario expects');
  if (wireError !== undefined) t.same(report.requests.byWireError, { [String(wireError)]: n }, `wire error ${wireError}`);
  t.equal(report.requests.timeouts, 0, 'no timeouts');
}

t.test('normal: every reading is bridged and answered 2.01', async (t) => {
  const h = await startHarness(t);
  const devices = await provisionFleet(h, FLEET_SIZE);
  const report = await runFleet(fleetOptions(h, devices, 'normal'));
  checkReport(t, report, 120);
  expectAll(t, report, '2.01');
  t.equal(report.devices.loggedIn, FLEET_SIZE, 'every device logged in');
  t.same(report.logins.byCode, { '2.01': FLEET_SIZE });
  t.equal(h.backend.requests.length, 120, 'the backend got every reading');
  const sources = new Set(h.logs.filter((l) => l.msg === 'coap request').map((l) => l.peer));
  t.ok(sources.size >= FLEET_SIZE, `each device has its own source port (${sources.size} endpoints)`);
});

t.test('normal, open loop with warm-up: a rate and a count; warm-up requests are not counted', async (t) => {
  const h = await startHarness(t);
  const devices = await provisionFleet(h, FLEET_SIZE);
  const report = await runFleet(fleetOptions(h, devices, 'normal', { concurrency: undefined, ratePerSec: 200, count: 100, warmup: true }));
  checkReport(t, report, 100);
  expectAll(t, report, '2.01');
  t.equal(report.load.mode, 'rate');
  t.equal(report.load.warmupRequests, FLEET_SIZE, 'one warm-up request per device');
  t.equal(h.backend.requests.length, FLEET_SIZE + 100, 'the backend got the warm-up and the counted readings');
});

t.test('tampered: a changed signature gets 4.01 (token invalid) and never reaches the backend', async (t) => {
  // The whole simulated fleet shares one source address here: lift the per-address budget of
  // failed signature checks (forgedTokensPerMinute, 20 by default), past which it answers 4.29.
  const h = await startHarness(t, { config: { forgedTokensPerMinute: 1000 } });
  const devices = await provisionFleet(h, FLEET_SIZE);
  const report = await runFleet(fleetOptions(h, devices, 'tampered'));
  checkReport(t, report, 120);
  expectAll(t, report, '4.01', WireError.tokenInvalid);
  t.equal(h.backend.requests.length, 0);
});

t.test('expired: tokens held past exp + leeway get 4.01 (token expired)', async (t) => {
  const h = await startHarness(t);
  const devices = await provisionFleet(h, FLEET_SIZE);
  // The devices wait on the gateway's injected clock: time moves instead of the test sleeping.
  const clock = { nowMs: h.clock.nowMs, sleep: async (ms: number) => h.clock.advanceSec(ms / 1000) };
  const report = await runFleet(fleetOptions(h, devices, 'expired', { clock, leewaySec: 30, maxHoldSec: 4000 }));
  checkReport(t, report, 120);
  expectAll(t, report, '4.01', WireError.tokenExpired);
  t.ok(report.scenario.heldPastExpirySec >= 0, 'the hold is reported');
  t.equal(report.logins.refreshes, 0, 'the scenario keeps its expired tokens');
  t.equal(h.backend.requests.length, 0);
});

t.test('expired: refuses to wait out long-lived tokens, and says how to run it', async (t) => {
  const h = await startHarness(t);
  const devices = await provisionFleet(h, 2);
  await t.rejects(runFleet(fleetOptions(h, devices, 'expired', { count: 2, concurrency: 1 })),
    { code: 'SIM_ERR_SCENARIO', message: /--token-ttl/ });
});

t.test('wrong-scope: GET /config without config:read gets 4.03', async (t) => {
  const h = await startHarness(t);
  const devices = await provisionFleet(h, FLEET_SIZE, ['telemetry:write']);
  const report = await runFleet(fleetOptions(h, devices, 'wrong-scope'));
  checkReport(t, report, 120);
  expectAll(t, report, '4.03', WireError.forbidden);
  t.equal(h.backend.requests.length, 0);
});

t.test('skew: clocks 10 minutes off still renew in time by the server time, and every reading gets 2.01', async (t) => {
  // Leeway 1 s: far below the 600 s skew, so only a device that times its renewal by the
  // gateway's clock keeps a valid token.
  const h = await startHarness(t, { config: { tokenTtl: 2, leeway: 1 } });
  const devices = await provisionFleet(h, 20);
  // 150 requests at 50/s take at least 3 s: longer than a token lives, so every device renews.
  const report = await runFleet(fleetOptions(h, devices, 'skew', {
    concurrency: undefined, ratePerSec: 50, count: 150, skewSec: 600, leewaySec: 1,
  }));
  checkReport(t, report, 150);
  expectAll(t, report, '2.01');
  t.equal(report.scenario.skewSec, 600);
  t.ok(report.logins.refreshes > 0, `devices renewed their tokens (${report.logins.refreshes} times)`);
});

t.test('skew without clock correction: devices that trust a slow clock send expired tokens', async (t) => {
  const h = await startHarness(t, { config: { tokenTtl: 1, leeway: 0 } });
  const devices = await provisionFleet(h, 10);
  // 150 requests at 50/s take at least 3 s; tokens live 1 s; half the devices think it is 10 minutes earlier.
  const report = await runFleet(fleetOptions(h, devices, 'skew', {
    concurrency: undefined, ratePerSec: 50, count: 150, skewSec: 600, clockCorrection: false,
  }));
  checkReport(t, report, 150);
  t.ok((report.requests.byCode['4.01'] ?? 0) > 0, `some readings refused as expired (${report.requests.byCode['4.01']})`);
  t.ok(report.requests.asExpected < report.requests.sent);
});

t.test('login: every request is a login answered 2.01', async (t) => {
  const h = await startHarness(t);
  const devices = await provisionFleet(h, FLEET_SIZE);
  const report = await runFleet(fleetOptions(h, devices, 'login', { count: 60 }));
  checkReport(t, report, 60);
  expectAll(t, report, '2.01');
  t.equal(report.logins.sent, 0, 'no separate login phase');
});

t.test('a fleet provisioned by `gateway devices add --count --out` runs from its file', async (t) => {
  const h = await startHarness(t);
  const file = join(await tempDir(t, 'sim-fleet-'), 'devices.json');
  const devices = await addFleet(file, FLEET_SIZE, ['--prefix', 'sim-', '--state', h.stateDir]);
  // No reload to wait for: the gateway reads a device from the store when it first logs in.
  t.equal(devices.length, FLEET_SIZE);
  const report = await runFleet(fleetOptions(h, devices, 'normal', { count: 60 }));
  checkReport(t, report, 60);
  expectAll(t, report, '2.01');
});

t.test('the schema check catches reports whose counts do not add up', async (t) => {
  const h = await startHarness(t);
  const devices = await provisionFleet(h, 5);
  const report = await runFleet(fleetOptions(h, devices, 'normal', { count: 10, concurrency: 5 }));
  const bad = JSON.parse(JSON.stringify(report)) as FleetReport & { extra?: number };
  bad.requests.byCode['2.01'] = 9;
  bad.extra = 1;
  delete (bad.requests as Partial<FleetReport['requests']>).timeouts;
  const problems = validateFleetReport(bad);
  t.ok(problems.some((p) => p.includes('requests.timeouts: missing')), 'a missing field');
  t.ok(problems.some((p) => p.includes('extra: not in the schema')), 'an unknown field');
  bad.requests.timeouts = 0;
  delete bad.extra;
  t.match(validateFleetReport(bad), [/byCode adds up to 9/], 'counts that do not add up');
});

t.test('bad options are refused at once, all of them', async (t) => {
  const devices = [{ id: 'a', secret: Buffer.alloc(32) }];
  // A port nothing listens on (bound to 0, then released): should a check ever let a run through,
  // it talks to no one's server.
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const port = socket.address().port;
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  await t.rejects(runFleet({ host: '192.0.2.1', port, devices, scenario: 'normal' }), { code: 'SIM_ERR_NOT_LOOPBACK' });
  await t.rejects(runFleet({ host: '127.0.0.1', port, devices, scenario: 'normal', ratePerSec: 10, concurrency: 1, count: -1 }),
    { code: 'SIM_ERR_BAD_OPTION', message: /--count.*exclude each other/ });
  await t.rejects(runFleet({ host: '127.0.0.1', port, devices, scenario: 'normal', concurrency: 2 }),
    { code: 'SIM_ERR_BAD_OPTION', message: /NSTART/ });
});

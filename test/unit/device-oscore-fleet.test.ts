import { randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';
import { parseDevices, type DeviceCredentials } from '../../device-sim/src/devices-file.ts';
import { runFleet, type FleetOptions } from '../../device-sim/src/fleet.ts';
import { OscoreRefusal } from '../../device-sim/src/oscore-messages.ts';
import { formatFleetReport, validateFleetReport, type FleetReport } from '../../device-sim/src/report.ts';
import type { ScenarioName } from '../../device-sim/src/scenarios.ts';
import { oscoreKeys, oscoreServer, type ServerPlan } from '../helpers/oscore-test-server.ts';

// `device-sim run --security oscore` (runFleet) against the small OSCORE server of the tests:
// the tokenless scenarios (normal, tampered, replay), what the report says of them, and the
// options refused. Against the real gateway: test/integration/simulator-oscore.test.ts.

const DEVICES = 6;
const COUNT = 36;

async function fleetAndServer(t: Test, plan: ServerPlan = {}) {
  const keys = Array.from({ length: DEVICES }, (_, i) => oscoreKeys(Buffer.of(i + 1)));
  const devices = parseDevices(keys.map((k, i) => ({ id: `sim-${i + 1}`, secret: randomBytes(32).toString('hex'), oscore: k.hex })), 'devices.json');
  const server = await oscoreServer(t, keys.map((k) => k.gateway), plan);
  return { devices, server };
}

function options(port: number, devices: DeviceCredentials[], scenario: ScenarioName, extra: Partial<FleetOptions> = {}): FleetOptions {
  return {
    host: '127.0.0.1', port, devices, scenario, count: COUNT, concurrency: DEVICES, timeoutMs: 5000, security: 'oscore', tokenBytes: 2, ...extra,
  };
}

function checkAll(t: Test, report: FleetReport, code: string, wireError?: number): void {
  t.same(validateFleetReport(report), [], 'the report matches its schema');
  t.same(validateFleetReport(JSON.parse(JSON.stringify(report))), [], 'and so does its JSON');
  t.same(report.requests.byCode, { [code]: COUNT }, `every request answered ${code}`);
  if (wireError !== undefined) t.same(report.requests.byWireError, { [String(wireError)]: COUNT }, `wire error ${wireError}`);
  t.equal(report.requests.asExpected, COUNT, 'all as the scenario expects');
  t.equal(report.logins.sent, 0, 'no logins: the context authenticates each device');
  t.equal(report.security.mode, 'oscore');
  t.equal(report.security.coapTokenBytes, 2);
}

t.test('normal under OSCORE: tokenless protected readings, one datagram each, sequence numbers continued across runs', async (t) => {
  const { devices, server } = await fleetAndServer(t);
  const report = await runFleet(options(server.port, devices, 'normal'));
  checkAll(t, report, '2.01');
  t.same(report.security.oscore, { protectedRequests: COUNT, echoRecoveries: 0, unprotectedErrors: 0, refusedAnswers: 0, replaysSent: 0 });
  t.equal(report.requests.radio.datagramsPerRequest, 1, 'one datagram a reading');
  t.equal(report.requests.radio.framesPerRequest, 1, 'one 802.15.4 frame a reading');
  const lines = formatFleetReport(report);
  t.ok(lines.some((l) => /^security\s+OSCORE \(RFC 8613\), no tokens: the context authenticates each device; 2-byte CoAP tokens; protected requests 36/.test(l)),
    'the summary names the protection');
  t.notOk(server.seen.some((s) => s.inner?.options.some((o) => o.number === 65_003)), 'no Access-Token in any request');
  const kids = new Set(server.seen.map((s) => s.kid));
  t.equal(kids.size, DEVICES, 'each device under its own kid');

  // The same credentials again (a second run in this process): every number is new.
  const again = await runFleet(options(server.port, devices, 'normal'));
  t.same(again.requests.byCode, { '2.01': COUNT }, 'a second run is not refused as a replay');
  const used = server.seen.map((s) => `${s.kid}/${s.sequenceNumber}`);
  t.equal(new Set(used).size, used.length, 'no (kid, sequence number) twice');
});

t.test('normal under OSCORE with a gateway that holds no replay windows: one Echo recovery per device', async (t) => {
  const { devices, server } = await fleetAndServer(t, { echoFirst: true });
  const report = await runFleet(options(server.port, devices, 'normal'));
  checkAll(t, report, '2.01');
  t.equal(report.security.oscore?.echoRecoveries, DEVICES, 'each device\'s first request went through the Echo recovery');
  t.equal(report.security.oscore?.protectedRequests, COUNT + DEVICES, 'and was sent twice');
});

t.test('tampered under OSCORE: one ciphertext bit flipped, 4.00 wire error 22, nothing decrypted', async (t) => {
  const { devices, server } = await fleetAndServer(t);
  const report = await runFleet(options(server.port, devices, 'tampered'));
  checkAll(t, report, OscoreRefusal.decryptFailed.code, OscoreRefusal.decryptFailed.wireError);
  t.equal(report.security.oscore?.unprotectedErrors, COUNT, 'every answer an error in clear');
  t.ok(server.seen.every((s) => s.inner === undefined), 'the server decrypted none');
});

t.test('replay: a protected reading, then its datagram from an eavesdropper\'s socket: 4.01 wire error 23', async (t) => {
  const { devices, server } = await fleetAndServer(t);
  const report = await runFleet(options(server.port, devices, 'replay'));
  checkAll(t, report, OscoreRefusal.replay.code, OscoreRefusal.replay.wireError);
  t.equal(report.security.oscore?.replaysSent, COUNT, 'one copy replayed per reading');
  t.equal(server.seen.length, 2 * COUNT, 'the server saw each reading and its copy');
  const readings = server.seen.filter((s) => s.inner !== undefined);
  t.equal(readings.length, 2 * COUNT, 'both verify (the copy is authentic)...');
  const byDatagram = new Map<string, number>();
  for (const s of server.seen) byDatagram.set(s.datagram.toString('hex'), (byDatagram.get(s.datagram.toString('hex')) ?? 0) + 1);
  t.ok([...byDatagram.values()].every((n) => n === 2), '...and each copy is byte for byte its reading');
  t.ok(formatFleetReport(report).some((l) => /datagrams replayed 36/.test(l)));
});

t.test('options that cannot run are refused before anything is sent', async (t) => {
  const { devices, server } = await fleetAndServer(t);
  await t.rejects(runFleet(options(server.port, devices, 'replay', { security: 'none' })), { code: 'SIM_ERR_BAD_OPTION', message: /needs --security oscore/ });
  await t.rejects(runFleet(options(server.port, devices, 'revoked', { revokeDevice: async () => undefined })),
    { code: 'SIM_ERR_BAD_OPTION', message: /ends the device's OSCORE context too/ });
  await t.rejects(runFleet(options(server.port, devices, 'normal', { security: 'none', withToken: true })), /--with-token is for --security oscore/);
  const plain = parseDevices([{ id: 'plain-1', secret: randomBytes(32).toString('hex') }], 'devices.json');
  await t.rejects(runFleet(options(server.port, plain, 'normal', { concurrency: 1 })), { code: 'SIM_ERR_DEVICES_FILE', message: /have no OSCORE context.*--oscore/ });
  await t.rejects(runFleet(options(server.port, devices, 'normal', { tokenBytes: 9 })), /--coap-token-bytes: expected a whole number from 1 to 8/);
  t.equal(server.seen.length, 0, 'nothing sent');
});

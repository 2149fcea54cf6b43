import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import t, { type Test } from 'tap';
import { DeviceClient } from '../../device-sim/src/device-client.ts';
import { readDevicesFile, type DeviceCredentials } from '../../device-sim/src/devices-file.ts';
import { openSequenceFile } from '../../device-sim/src/oscore-sequence-file.ts';
import { COAP_BYTES_PER_FRAME, framesFor } from '../../device-sim/src/counting-socket.ts';
import { validateFleetReport, type FleetReport } from '../../device-sim/src/report.ts';
import { ContentFormat, ErrorKey, WireError, encodeCbor } from '../../gateway/src/wire/index.ts';
import { REPO_ROOT, runCli } from '../helpers/cli-run.ts';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.ts';

// The simulator under OSCORE against the real gateway process (file store): `device-sim run
// --security oscore` as an operator runs it, with the devices file `gateway devices add --count
// --oscore --out` wrote, and the device client itself for logins, refreshes, tokened and
// tokenless requests, a block-wise upload, a gateway restart. Readings are
// checked where they arrive: the HTTP backend.

const DEVICES = 4;
const COUNT = 24;
const SIM_TIMEOUT_MS = 40_000;
/** A 25-byte CBOR reading: {"temp": 215, "seq": 1234, "unit": "degC"}, as the wire-size figures use. */
const READING = encodeCbor(new Map<string, unknown>([['temp', 215], ['seq', 1234], ['unit', 'degC']]));

interface SimRun { code: number; stdout: string; stderr: string; report: FleetReport | undefined }

function runSimulator(gw: GatewayProcess, devicesFile: string, name: string, extra: readonly string[]): Promise<SimRun> {
  const json = join(gw.stateDir, `${name}.report.json`);
  const args = ['device-sim/bin/device-sim.js', 'run', '--devices-file', devicesFile, '--host', '127.0.0.1', '--port', String(gw.port),
    '--security', 'oscore', '--count', String(COUNT), '--concurrency', String(DEVICES), '--coap-token-bytes', '2',
    '--timeout-ms', '10000', '--progress', 'off', '--json', json, ...extra];
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: REPO_ROOT, timeout: SIM_TIMEOUT_MS }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      readFile(json, 'utf8').then((text) => JSON.parse(text) as FleetReport, () => undefined).then((report) => resolve({ code, stdout, stderr, report }));
    });
  });
}

function reportOf(t: Test, run: SimRun): FleetReport {
  t.comment(run.stdout.split('\n').filter((l) => /^(requests|codes|bytes\/request|frames\/request|security|problem)\s/.test(l)).join('\n'));
  t.equal(run.code, 0, `device-sim exits 0 (stderr: ${run.stderr.trim() || 'none'})`);
  if (run.report === undefined) throw new Error(`no report: ${run.stdout}`);
  t.same(validateFleetReport(run.report), [], 'the report matches its schema');
  t.equal(run.report.security.mode, 'oscore');
  return run.report;
}

const wireErrorOf = (body: unknown) => (body instanceof Map ? (body as Map<number, unknown>).get(ErrorKey.code) : undefined);
const telemetry = (gw: GatewayProcess) => gw.backend.requests.filter((r) => r.url.includes('/telemetry/'));

t.test('the simulator under OSCORE, against the gateway process', async (t) => {
  const gw = await startGatewayProcess(t, { devices: 1 });
  const devicesFile = join(gw.stateDir, 'oscore-fleet.json');
  const added = await runCli(['devices', 'add', '--count', String(DEVICES), '--prefix', 'ox-', '--oscore', '--scope', 'telemetry:write',
    '--out', devicesFile, '--state', gw.stateDir]);
  t.equal(added.code, 0, `devices add --count --oscore: exit 0 (${added.stderr.trim()})`);
  const strict = join(gw.stateDir, 'oscore-strict.json');
  t.equal((await runCli(['devices', 'add', '--count', '1', '--prefix', 'strict-', '--oscore', '--security', 'oscore',
    '--scope', 'telemetry:write', 'config:read', '--out', strict, '--state', gw.stateDir])).code, 0, 'and one device refused without OSCORE');
  const fleet = await readDevicesFile(devicesFile);
  t.ok(fleet.every((d) => d.oscore !== undefined && d.secret !== undefined), 'each device has an OSCORE context beside its secret');

  await t.test('run --security oscore, normal: tokenless protected readings, each device\'s first through the Echo recovery', async (t) => {
    const before = telemetry(gw).length;
    const report = reportOf(t, await runSimulator(gw, devicesFile, 'normal', []));
    t.same(report.requests.byCode, { '2.01': COUNT }, 'every reading bridged, 2.01');
    t.equal(report.logins.sent, 0, 'no logins');
    t.equal(report.security.oscore?.echoRecoveries, DEVICES, 'one Echo recovery per context: the file store holds no replay window for a new one');
    t.equal(report.security.oscore?.refusedAnswers, 0);
    await gw.backend.waitForRequests(gw.backend.requests.length);
    const arrived = telemetry(gw).slice(before);
    t.equal(arrived.length, COUNT, 'the backend got each reading once (the challenged first requests were not acted on)');
    const jwt = decodeJwt(String(arrived[0]!.headers.authorization).replace(/^Bearer /, ''));
    t.equal(jwt.sec, 'oscore', 'the backend is told how the request was protected (claim sec)');
    t.match(arrived[0]!.url, /^\/devices\/ox-\d\/telemetry\/temperature$/);
    const perDatagram = report.requests.radio.bytesPerRequest / report.requests.radio.datagramsPerRequest;
    t.ok(perDatagram <= COAP_BYTES_PER_FRAME, `a protected reading fits one 802.15.4 frame (${perDatagram} bytes a datagram)`);
  });

  await t.test('a second run with the same devices file continues the sequence numbers: nothing refused as a replay', async (t) => {
    const seq = JSON.parse(await readFile(`${devicesFile}.oscore-seq.json`, 'utf8')) as { next: Record<string, number> };
    t.equal(Object.keys(seq.next).length, DEVICES, 'the sequence file has every context');
    const report = reportOf(t, await runSimulator(gw, devicesFile, 'again', []));
    t.same(report.requests.byCode, { '2.01': COUNT }, 'every reading 2.01 again');
    t.equal(report.security.oscore?.echoRecoveries, 0, 'the gateway holds the windows now');
  });

  await t.test('tampered and replay scenarios: 4.00 (22) and 4.01 (23), the backend untouched by either', async (t) => {
    const before = telemetry(gw).length;
    const tampered = reportOf(t, await runSimulator(gw, devicesFile, 'tampered', ['--scenario', 'tampered']));
    t.same(tampered.requests.byWireError, { [WireError.oscoreDecryptFailed]: COUNT }, 'one flipped ciphertext bit: wire error 22');
    t.same(tampered.requests.byCode, { '4.00': COUNT });
    t.equal(telemetry(gw).length, before, 'no tampered reading reached the backend');
    const replay = reportOf(t, await runSimulator(gw, devicesFile, 'replay', ['--scenario', 'replay']));
    t.same(replay.requests.byCode, { '4.01': COUNT }, 'each copy refused');
    t.same(replay.requests.byWireError, { [WireError.oscoreReplay]: COUNT }, 'as a replay: wire error 23');
    t.equal(replay.security.oscore?.replaysSent, COUNT);
    await gw.backend.waitForRequests(before + COUNT);
    t.equal(telemetry(gw).length, before + COUNT, 'the backend got each reading once, its copy never');
  });

  await t.test('bad usage exits 2 and says why', async (t) => {
    const bad = await runSimulator(gw, devicesFile, 'bad', ['--scenario', 'revoked', '--state', gw.stateDir]);
    t.equal(bad.code, 2, 'revoked under OSCORE: exit 2');
    t.match(bad.stderr, /cannot run under --security oscore/);
    const plain = await runSimulator(gw, join(gw.stateDir, 'provisioned.json'), 'plain', ['--concurrency', '1']);
    t.equal(plain.code, 2, 'devices without contexts: exit 2');
    t.match(plain.stderr, /have no OSCORE context.*devices add --count N --oscore/);
  });

  await t.test('--with-token: logins under OSCORE, the CWT inside the protection', async (t) => {
    const report = reportOf(t, await runSimulator(gw, devicesFile, 'with-token', ['--with-token', '--token-format', 'cwt']));
    t.same(report.requests.byCode, { '2.01': COUNT });
    t.same(report.logins.byCode, { '2.01': DEVICES }, 'every device logged in under OSCORE');
    t.equal(report.tokensIssued.cwt, DEVICES, 'CWTs issued');
  });

  // The device client itself, on one device of the fleet: it continues the sequence numbers the
  // runs above used (the gateway holds its replay window), from the file they kept them in.
  const device: DeviceCredentials = fleet[0]!;
  const sequences = await openSequenceFile(`${devicesFile}.oscore-seq.json`);
  device.oscore!.persistIn(sequences);
  t.ok(device.oscore!.nextSequenceNumber > 0, `the device continues at sequence number ${device.oscore!.nextSequenceNumber}`);
  const client = await DeviceClient.open('127.0.0.1', gw.port, { timeoutMs: 10_000, oscore: device.oscore!, tokenBytes: 2 });
  t.teardown(() => client.close());

  await t.test('login, refresh, a tokened and a tokenless request under OSCORE', async (t) => {
    const login = await client.login(device.id, device.secret!, { tokenFormat: 'cwt' });
    t.equal(login.answer.code, '2.01', 'login under OSCORE');
    t.equal(login.answer.protection, 'oscore', 'answered protected');
    const refreshed = await client.refresh(login.tokens!.refreshToken, { tokenFormat: 'cwt' });
    t.equal(refreshed.answer.code, '2.01', 'refresh under OSCORE');
    const before = telemetry(gw).length;
    const tokened = await client.send({ method: 'POST', path: '/telemetry/temp', payload: READING, contentFormat: ContentFormat.cbor, token: refreshed.tokens!.accessToken });
    t.equal(tokened.code, '2.01', 'a tokened reading: 2.01');
    const tokenless = await client.send({ method: 'POST', path: '/telemetry/temp', payload: READING, contentFormat: ContentFormat.cbor });
    t.equal(tokenless.code, '2.01', 'a tokenless reading: 2.01');
    t.equal(tokenless.protection, 'oscore');
    const datagram = client.lastRequestDatagram!;
    t.ok(datagram.length <= 70, `a 25-byte reading to /telemetry/temp is ${datagram.length} bytes on the wire (<= 70)`);
    t.equal(framesFor(datagram.length), 1, 'one 802.15.4 frame');
    const config = await client.send({ path: '/config' });
    t.equal(config.code, '4.03', 'GET /config tokenless: the record\'s scopes (no config:read) apply');
    t.equal(wireErrorOf(config.body), WireError.forbidden);
    await gw.backend.waitForRequests(gw.backend.requests.length);
    t.equal(telemetry(gw).length, before + 2, 'both readings reached the backend');
  });

  await t.test('a 3 KB upload in inner Block1 blocks reaches the backend whole', async (t) => {
    const samples = 'x'.repeat(3072);
    const before = gw.backend.requests.length;
    const answer = await client.send({ method: 'POST', path: '/telemetry/bulk', body: new Map([[1, samples]]), block1Bytes: 512 });
    t.equal(answer.code, '2.01', 'the last block answered 2.01');
    if (answer.code !== '2.01') return;
    await gw.backend.waitForRequests(before + 1);
    t.same(JSON.parse(gw.backend.requests[before]!.body.toString()), { 1: samples }, 'the body whole at the backend');
  });

  await t.test('after a gateway restart the next request goes through the Echo recovery, then succeeds', async (t) => {
    await gw.restart();
    const restarted = await DeviceClient.open('127.0.0.1', gw.port, { timeoutMs: 10_000, oscore: device.oscore! });
    t.teardown(() => restarted.close());
    const before = telemetry(gw).length;
    const answer = await restarted.send({ method: 'POST', path: '/telemetry/temp', payload: READING, contentFormat: ContentFormat.cbor });
    t.equal(answer.code, '2.01', 'served');
    t.equal(restarted.oscoreStats().echoRecoveries, 1, 'after one Echo recovery');
    await gw.backend.waitForRequests(before + 1);
    t.equal(telemetry(gw).length, before + 1, 'one reading: the challenged request was not acted on');
  });

  await t.test('a device required to use OSCORE is refused in clear, served under it', async (t) => {
    const [only] = await readDevicesFile(strict);
    const c = await DeviceClient.open('127.0.0.1', gw.port, { timeoutMs: 10_000, oscore: only!.oscore! });
    t.teardown(() => c.close());
    const underOscore = await c.login(only!.id, only!.secret!, {});
    t.equal(underOscore.answer.code, '2.01', 'a login under OSCORE works');
    const clear = await c.send({ method: 'POST', path: '/auth', body: new Map<number, unknown>([[1, only!.id], [2, only!.secret!]]), protection: 'none' });
    t.equal(clear.code, '4.01', 'the same login in clear: 4.01');
    t.equal(wireErrorOf(clear.body), WireError.oscoreRequired, 'wire error 24: OSCORE required');
  });
});

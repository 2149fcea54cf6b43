import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import { COAP_BYTES_PER_FRAME } from '../../device-sim/src/counting-socket.ts';
import { FLEET_REPORT_SCHEMA_ID, validateFleetReport, type FleetReport } from '../../device-sim/src/report.ts';
import type { TokenFormatName } from '../../gateway/src/wire/index.ts';
import { REPO_ROOT } from '../helpers/cli-run.ts';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.ts';

const DEVICES = 5;
const COUNT = 40;
const SIM_TIMEOUT_MS = 60_000;

interface SimRun {
  code: number;
  stdout: string;
  stderr: string;
  report: FleetReport | undefined;
}

/**
 * `device-sim run --scenario normal` as an operator runs it (its own process, the devices file
 * `gateway devices add --out` wrote), against the gateway process; the report read back from --json.
 */
function runSimulator(gw: GatewayProcess, name: string, extra: readonly string[]): Promise<SimRun> {
  const json = join(gw.stateDir, `${name}.report.json`);
  const args = ['device-sim/bin/device-sim.js', 'run', '--devices-file', join(gw.stateDir, 'provisioned.json'),
    '--host', '127.0.0.1', '--port', String(gw.port), '--scenario', 'normal', '--count', String(COUNT), '--concurrency', String(DEVICES),
    '--timeout-ms', '10000', '--progress', 'off', '--json', json, ...extra];
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: REPO_ROOT, timeout: SIM_TIMEOUT_MS }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      readFile(json, 'utf8').then((text) => JSON.parse(text) as FleetReport, () => undefined)
        .then((report) => resolve({ code, stdout, stderr, report }));
    });
  });
}

/** A run whose every reading was bridged, with the new fields present and plausible; returns its report. */
function checkRun(t: Test, run: SimRun, format: TokenFormatName | null): FleetReport {
  t.comment(run.stdout.split('\n').filter((l) => /^(requests|bytes\/request|frames\/request|frame model|token format|login frames)\s/.test(l)).join('\n'));
  t.equal(run.code, 0, `device-sim exits 0 (stderr: ${run.stderr.trim() || 'none'})`);
  const report = run.report;
  if (report === undefined) {
    t.fail('device-sim wrote its --json report');
    throw new Error(run.stdout);
  }
  t.same(validateFleetReport(report), [], 'the JSON report matches its schema');
  t.equal(report.schema, FLEET_REPORT_SCHEMA_ID);
  t.equal(report.scenario.tokenFormat, format, `the report names the format asked for (${format})`);
  t.same(report.requests.byCode, { '2.01': COUNT }, 'every reading bridged and answered 2.01');
  t.equal(report.devices.loggedIn, DEVICES, 'every device logged in');
  const issued = report.tokensIssued.jwt + report.tokensIssued.cwt;
  t.equal(issued, report.logins.byCode['2.01'] ?? 0, 'one token counted per successful login or refresh');
  if (format !== null) t.equal(report.tokensIssued[format], issued, `every token issued is a ${format.toUpperCase()}`);

  t.equal(report.frameModel.coapBytesPerFrame, COAP_BYTES_PER_FRAME);
  t.equal(report.frameModel.frameBytes - report.frameModel.macOverheadBytes - report.frameModel.lowpanHeaderBytes,
    report.frameModel.coapBytesPerFrame, 'the frame model adds up (127 - 25 - 10 = 92)');
  const radio = report.requests.radio;
  t.ok(radio.bytesPerRequest > 0, `bytes per request > 0 (${radio.bytesPerRequest})`);
  t.equal(radio.bytesPerRequest, report.requests.bytes.sentPerRequest, 'the same bytes as bytes.sentPerRequest');
  t.ok(radio.datagramsPerRequest >= 1, `at least one datagram per request (${radio.datagramsPerRequest})`);
  t.ok(radio.framesPerRequest >= 1, `frames per request >= 1 (${radio.framesPerRequest})`);
  t.ok(radio.framesPerRequest >= radio.datagramsPerRequest, 'at least one frame per datagram');
  // Sum of ceil(b / 92) over datagrams >= (sum of b) / 92, and < that plus one frame per datagram.
  t.ok(radio.framesPerRequest >= radio.bytesPerRequest / COAP_BYTES_PER_FRAME, 'frames cover the bytes');
  t.ok(radio.framesPerRequest < radio.bytesPerRequest / COAP_BYTES_PER_FRAME + radio.datagramsPerRequest + 0.001,
    'and are ceil() per datagram, not more');
  t.equal(radio.framesSent, Math.round(radio.framesPerRequest * report.requests.sent), 'framesSent is the per-request figure times sent (to rounding)');
  t.ok(report.logins.radio.framesPerRequest >= 1, 'logins get their frames too');

  const lines = run.stdout.split('\n');
  t.ok(lines.some((l) => /^frames\/request\s+\d/.test(l)), 'the summary table has a frames/request row');
  t.ok(lines.some((l) => /^frame model\s+IEEE 802\.15\.4 frames of 127 bytes .* = 92 CoAP bytes/.test(l)), 'and states the frame assumption');
  t.ok(lines.some((l) => /^token format\s/.test(l)), 'and the token format');
  return report;
}

// One gateway process for every run, so the JWT and the CWT runs are alike but for the format.
// Its teardown belongs to this parent test: the root test may end (and tear down) between top-level awaits.
t.test('device-sim run --token-format, against the gateway process', async (t) => {
  const gw = await startGatewayProcess(t, { devices: DEVICES });
  // Per datagram, not per request: a loaded machine makes node-coap retransmit now and then, and a
  // retransmission is one more datagram of the same size, not a larger message.
  const perDatagram = (radio: { bytesPerRequest: number; framesPerRequest: number; datagramsPerRequest: number }) =>
    ({ bytes: radio.bytesPerRequest / radio.datagramsPerRequest, frames: radio.framesPerRequest / radio.datagramsPerRequest });
  let jwtBytesPerRequest: number | undefined;
  let jwtLoginBytes: number | undefined;

  await t.test('--token-format jwt: the report has token format, bytes and 802.15.4 frames per request', async (t) => {
    const report = checkRun(t, await runSimulator(gw, 'jwt', ['--token-format', 'jwt']), 'jwt');
    jwtBytesPerRequest = perDatagram(report.requests.radio).bytes;
    jwtLoginBytes = report.logins.bytes.sentPerRequest;
    // A reading with a JWT of a few hundred bytes does not fit one frame.
    t.ok(perDatagram(report.requests.radio).frames > 1, `a JWT reading takes more than one frame (${perDatagram(report.requests.radio).frames})`);
  });

  await t.test('--token-format cwt: every token a CWT, fewer bytes per request than with JWTs', async (t) => {
    const report = checkRun(t, await runSimulator(gw, 'cwt', ['--token-format', 'cwt']), 'cwt');
    t.ok(jwtBytesPerRequest !== undefined, 'the JWT run came first');
    const cwt = perDatagram(report.requests.radio);
    t.ok(cwt.bytes < jwtBytesPerRequest!, `a CWT reading sends fewer bytes than a JWT one (${cwt.bytes} < ${jwtBytesPerRequest})`);
    t.ok(cwt.frames <= 2, `and fits in at most two frames (${cwt.frames})`);
  });

  await t.test('without --token-format: no format asked, the devices\' default issued', async (t) => {
    const report = checkRun(t, await runSimulator(gw, 'default', []), null);
    // Key 6 with a small value is two bytes of CBOR (06 01): the logins of the JWT run, and only they, carried it.
    t.equal(report.logins.bytes.sentPerRequest + 2, jwtLoginBytes, 'a login without --token-format sends no key 6');
  });

  await t.test('a bad --token-format is refused as bad usage', async (t) => {
    const run = await runSimulator(gw, 'bad', ['--token-format', 'paseto']);
    t.equal(run.code, 2, 'exit 2');
    t.match(run.stderr, /--token-format: expected jwt or cwt, got paseto/);
  });
});

// OSCORE-protected readings beside CWT-tokened ones, one gateway process, one run: the same
// devices (each with an OSCORE context and a secret), the same closed loop, alternating rounds of
// tokenless readings under OSCORE (the context authenticates the device) and readings in clear
// with a cached CWT (logged in before each round, the token verified once at warm-up). Figures:
// requests/s and the gateway's CPU per request of each, and their ratios; then the bytes a device
// sends for a 25-byte reading to /telemetry/temp and for GET /config with a JWT, a CWT, under
// OSCORE without a token and under OSCORE with the CWT inside, measured on the datagrams (2-byte
// CoAP token, as a constrained device uses), with their 802.15.4 frames.
// Flags: --devices, --duration (each round), --concurrency, --rounds, --profile (the gateway
// under --cpu-prof; the summary covers the last OSCORE round).
import { ContentFormat, encodeCbor, type TokenFormatName } from '../../gateway/src/wire/index.ts';
import type { ProfileWindow } from '../src/cpu-profile.ts';
import { framesFor } from '../src/counting-socket.ts';
import { DeviceClient, type AccessToken } from '../src/device-client.ts';
import { SimError } from '../src/errors.ts';
import { runFleet, type FleetOptions } from '../src/fleet.ts';
import type { SecretCredentials } from '../src/devices-file.ts';
import { emitResult, flag, loadPhaseCpu, printReport, say, startGatewayScenario } from './lib.ts';

const HOST = '127.0.0.1';
const durationSec = Number(flag('duration') ?? 6);
const concurrency = Number(flag('concurrency') ?? 64);
const rounds = Number(flag('rounds') ?? 2);
/** A 25-byte CBOR reading: {"temp": 215, "seq": 1234, "unit": "degC"}, as the wire-size figures use. */
const READING = encodeCbor(new Map<string, unknown>([['temp', 215], ['seq', 1234], ['unit', 'degC']]));
/** A constrained device's CoAP token. */
const TOKEN_BYTES = 2;

if (!(Number.isInteger(rounds) && rounds >= 1 && rounds <= 10)) throw new SimError('SIM_ERR_BAD_OPTION', `--rounds: 1 to 10, got ${rounds}`);

type Mode = 'cwt' | 'oscore';
interface Round { mode: Mode; rps: number; cpuUs: number; p99Ms: number; unexpected: number }

const scenario = await startGatewayScenario('bench-oscore-', {
  traceGcWhileProfiling: false, scopes: ['telemetry:write', 'config:read'], provisionFlags: ['--oscore'],
});
const { deviceCount, devices, gateway } = scenario;
let oscoreWindow: Promise<ProfileWindow | undefined> = Promise.resolve(undefined);
try {
  say(`gateway on ${HOST}:${gateway.port}; ${deviceCount} devices with an OSCORE context and a secret, ${concurrency} in flight, `
    + `${rounds} round(s) of ${durationSec} s each way (after warm-up), CWT in clear and OSCORE alternating`);
  const fleetFor = (mode: Mode): FleetOptions => ({
    host: HOST, port: gateway.port, devices, scenario: 'normal', concurrency,
    ...(mode === 'oscore' ? { security: 'oscore' } : { tokenFormat: 'cwt' }),
  });
  // Warm both paths: every context through its Echo recovery (the file store holds no window for a
  // new one), every device logged in once, the code compiled.
  await runFleet({ ...fleetFor('oscore'), count: deviceCount * 2 });
  await runFleet({ ...fleetFor('cwt'), devices: devices.slice(0, Math.max(concurrency, 200)), durationSec: 2 });

  const results: Round[] = [];
  for (let round = 1; round <= rounds; round += 1) {
    for (const mode of ['cwt', 'oscore'] as const) {
      const cpu = loadPhaseCpu({ gateway: gateway.pid });
      const report = await runFleet({ ...fleetFor(mode), durationSec, warmup: true, onProgress: cpu.onProgress });
      const usPerRequest = await cpu.usPerRequest(report.requests.sent);
      if (mode === 'oscore') oscoreWindow = cpu.window();
      printReport(`round ${round}, ${mode === 'oscore' ? 'OSCORE, no token' : 'CWT in clear, cached'}`, report);
      const rps = Math.round(report.requests.asExpected / report.phasesSec.load);
      results.push({ mode, rps, cpuUs: usPerRequest.gateway ?? 0, p99Ms: report.requests.latencyMs.p99, unexpected: report.requests.sent - report.requests.asExpected });
      say(`round ${round}, ${mode}: ${rps} req/s, gateway CPU ${usPerRequest.gateway} us per request`);
    }
  }
  const mean = (mode: Mode, field: 'rps' | 'cpuUs' | 'p99Ms') => {
    const of = results.filter((r) => r.mode === mode);
    return round1(of.reduce((sum, r) => sum + r[field], 0) / of.length);
  };
  const unexpected = (mode: Mode) => results.filter((r) => r.mode === mode).reduce((sum, r) => sum + r.unexpected, 0);

  const sizes = await wireSizes(gateway.port, devices[0]!);
  say('');
  say(`mean of ${rounds} round(s): CWT ${mean('cwt', 'rps')} req/s, ${mean('cwt', 'cpuUs')} us/request; `
    + `OSCORE ${mean('oscore', 'rps')} req/s, ${mean('oscore', 'cpuUs')} us/request `
    + `(OSCORE / CWT: throughput ${ratio(mean('oscore', 'rps'), mean('cwt', 'rps'))}x, CPU ${ratio(mean('oscore', 'cpuUs'), mean('cwt', 'cpuUs'))}x)`);
  say(`bytes a device sends (${TOKEN_BYTES}-byte CoAP token), and 802.15.4 frames:`);
  for (const [label, s] of Object.entries(sizes)) {
    say(`  ${label.padEnd(22)} reading ${String(s.reading).padStart(4)} B (${framesFor(s.reading)} frame${framesFor(s.reading) > 1 ? 's' : ''}), `
      + `its answer ${s.readingAnswer} B;   GET /config ${String(s.get).padStart(4)} B (${framesFor(s.get)}), its answer ${s.getAnswer} B`);
  }
  emitResult({
    oscore_step_cwt_rps: mean('cwt', 'rps'),
    oscore_rps: mean('oscore', 'rps'),
    oscore_step_cwt_cpu_us_per_request: mean('cwt', 'cpuUs'),
    oscore_cpu_us_per_request: mean('oscore', 'cpuUs'),
    oscore_step_cwt_p99_ms: mean('cwt', 'p99Ms'),
    oscore_p99_ms: mean('oscore', 'p99Ms'),
    oscore_step_unexpected: unexpected('cwt') + unexpected('oscore'),
    wire_reading_bytes_jwt: sizes.jwt.reading,
    wire_reading_bytes_cwt: sizes.cwt.reading,
    wire_reading_bytes_oscore: sizes.oscore.reading,
    wire_reading_bytes_oscore_cwt: sizes['oscore + cwt'].reading,
    wire_reading_frames_oscore: framesFor(sizes.oscore.reading),
    wire_get_bytes_jwt: sizes.jwt.get,
    wire_get_bytes_cwt: sizes.cwt.get,
    wire_get_bytes_oscore: sizes.oscore.get,
    wire_reading_answer_bytes_cwt: sizes.cwt.readingAnswer,
    wire_reading_answer_bytes_oscore: sizes.oscore.readingAnswer,
  });
} finally {
  await scenario.finish('oscore_profile', oscoreWindow);
}

interface Sizes { reading: number; readingAnswer: number; get: number; getAnswer: number }

/**
 * One device's datagrams, on the wire: a 25-byte reading and GET /config, with a JWT, with a
 * CWT, under OSCORE without a token, and under OSCORE with the CWT inside. Each request is sent
 * twice and the second measured (the first may be the Echo recovery of a new context or a
 * token's first verification; neither changes the request's size).
 */
async function wireSizes(port: number, device: SecretCredentials): Promise<Record<'jwt' | 'cwt' | 'oscore' | 'oscore + cwt', Sizes>> {
  const measure = async (client: DeviceClient, token: AccessToken | null): Promise<Sizes> => {
    const once = async (send: () => Promise<{ code: string }>, expect: string) => {
      await send();
      const before = client.traffic();
      const answer = await send();
      const after = client.traffic();
      if (answer.code !== expect) throw new SimError('SIM_ERR_SCENARIO', `wire sizes: expected ${expect}, got ${answer.code}`);
      return { request: client.lastRequestDatagram!.length, answer: after.bytesReceived - before.bytesReceived };
    };
    const reading = await once(() => client.send({ method: 'POST', path: '/telemetry/temp', payload: READING, contentFormat: ContentFormat.cbor, token }), '2.01');
    const get = await once(() => client.send({ path: '/config', token }), '2.05');
    return { reading: reading.request, readingAnswer: reading.answer, get: get.request, getAnswer: get.answer };
  };
  const tokenOf = async (client: DeviceClient, format: TokenFormatName): Promise<AccessToken> => {
    const { answer, tokens } = await client.login(device.id, device.secret, { tokenFormat: format });
    if (tokens === undefined) throw new SimError('SIM_ERR_SCENARIO', `wire sizes: the ${format} login of ${device.id} answered ${answer.code}`);
    return tokens.accessToken;
  };
  const clear = await DeviceClient.open(HOST, port, { timeoutMs: 5000, tokenBytes: TOKEN_BYTES });
  const oscore = await DeviceClient.open(HOST, port, { timeoutMs: 5000, tokenBytes: TOKEN_BYTES, oscore: device.oscore! });
  try {
    return {
      jwt: await measure(clear, await tokenOf(clear, 'jwt')),
      cwt: await measure(clear, await tokenOf(clear, 'cwt')),
      oscore: await measure(oscore, null),
      'oscore + cwt': await measure(oscore, await tokenOf(oscore, 'cwt')),
    };
  } finally {
    await Promise.all([clear.close(), oscore.close()]);
  }
}

function ratio(a: number, b: number): number {
  return b > 0 ? Math.round((a / b) * 1000) / 1000 : 0;
}

function round1(value: number): number {
  return Math.round(value * 10) / 10;
}

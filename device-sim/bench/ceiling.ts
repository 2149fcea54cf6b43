// The ceiling: a plain node-coap server echoing the payload (no auth, no bridge), in its own
// process, driven by the same load generator and the same requests (token option included) as
// the gateway benchmark. Closed loop, bounded in flight.
import { runFleet } from '../src/fleet.ts';
import { emitResult, flag, fleetIds, gatewayLikeToken, loadPhaseCpu, printReport, say, startEchoProcess } from './lib.ts';

const durationSec = Number(flag('duration') ?? 10);
const concurrency = Number(flag('concurrency') ?? 64);
const deviceCount = Number(flag('devices') ?? 1000);

const echo = await startEchoProcess();
try {
  const devices = fleetIds(deviceCount).map((id) => ({ id, secret: Buffer.alloc(32) }));
  const token = await gatewayLikeToken(devices[0]!.id);
  say(`echo server on 127.0.0.1:${echo.port}; ${deviceCount} devices, ${concurrency} in flight, ${durationSec} s (after 2 s warm-up)`);
  const common = { host: '127.0.0.1', port: echo.port, scenario: 'normal', staticToken: token, concurrency } as const;
  await runFleet({ ...common, devices: devices.slice(0, Math.max(concurrency, 200)), durationSec: 2 });
  const cpu = loadPhaseCpu({ server: echo.pid, generator: process.pid });
  const report = await runFleet({ ...common, devices, durationSec, warmup: true, onProgress: cpu.onProgress });
  const usPerUnit = await cpu.usPerRequest(report.requests.sent);
  printReport('ceiling: node-coap echo', report);
  say(`CPU per request: echo server ${usPerUnit.server} us, load generator ${usPerUnit.generator} us`);
  emitResult({
    ceiling_rps: Math.round(report.requests.asExpected / report.phasesSec.load),
    ceiling_p99_ms: report.requests.latencyMs.p99,
    ceiling_concurrency: concurrency,
    ceiling_request_bytes: report.requests.bytes.sentPerRequest,
    ceiling_server_cpu_us_per_request: usPerUnit.server,
    generator_cpu_us_per_request: usPerUnit.generator,
  });
} finally {
  await echo.stop();
}

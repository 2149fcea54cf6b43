// The gateway end to end at its peak: tokened CBOR readings, verified, bridged to a local HTTP
// backend (its own process), answered. `gateway serve` runs in its own process with its default
// settings (info log, a JSON line per request, to a file). Closed loop, bounded in flight.
// --profile: run the gateway under `node --cpu-prof` and print where its time goes.
import type { ProfileWindow } from '../src/cpu-profile.ts';
import { runFleet } from '../src/fleet.ts';
import {
  emitResult, flag, loadPhaseCpu, memoryOf, printReport, say, startGatewayScenario,
} from './lib.ts';

const durationSec = Number(flag('duration') ?? 10);
const concurrency = Number(flag('concurrency') ?? 64);

const scenario = await startGatewayScenario('bench-gateway-', { traceGcWhileProfiling: false });
const { deviceCount, devices, backend, gateway, profile, gatewayArgs } = scenario;
let loadWindow: Promise<ProfileWindow | undefined> = Promise.resolve(undefined);
try {
  say(`gateway on 127.0.0.1:${gateway.port} -> ${backend.url}; ${deviceCount} devices, ${concurrency} in flight, ${durationSec} s (after 2 s warm-up)${profile ? ', under --cpu-prof' : ''}${gatewayArgs.length > 0 ? `, gateway ${gatewayArgs.join(' ')}` : ''}`);
  const common = { host: '127.0.0.1', port: gateway.port, scenario: 'normal', concurrency } as const;
  await runFleet({ ...common, devices: devices.slice(0, Math.max(concurrency, 200)), durationSec: 2 });
  const cpu = loadPhaseCpu({ gateway: gateway.pid, backend: backend.pid, generator: process.pid }, gateway.logFile);
  const report = await runFleet({ ...common, devices, durationSec, warmup: true, onProgress: cpu.onProgress });
  loadWindow = cpu.window();
  const usPerUnit = await cpu.usPerRequest(report.requests.sent);
  printReport(`gateway end to end${profile ? ' (profiled: slower than unprofiled)' : ''}`, report);
  say(`CPU per request: gateway ${usPerUnit.gateway} us, backend ${usPerUnit.backend} us, load generator ${usPerUnit.generator} us`);
  const gc = await cpu.gcPauses();
  const udpDrops = await cpu.udpDrops();
  if (!profile) {
    say(`during the load: gateway GC ${gc?.count} pauses, ${gc?.totalMs} ms in all, longest ${gc?.maxMs} ms, ${gc?.over20Ms} of 20 ms or more; `
      + `UDP datagrams dropped for full receive buffers (machine-wide): ${udpDrops}`);
  }
  const memory = await memoryOf(gateway.pid);
  emitResult({
    [profile ? 'profiled_gateway_rps' : 'gateway_rps']: Math.round(report.requests.asExpected / report.phasesSec.load),
    [profile ? 'profiled_gateway_p99_ms' : 'gateway_peak_p99_ms']: report.requests.latencyMs.p99,
    ...(profile ? {} : {
      gateway_unexpected: report.requests.sent - report.requests.asExpected,
      gateway_request_bytes: report.requests.bytes.sentPerRequest,
      gateway_response_bytes: report.requests.bytes.receivedPerRequest,
      gateway_rss_mb_after_peak: memory.rssMb,
      peak_gc_pause_total_ms: gc?.totalMs,
      peak_gc_pause_max_ms: gc?.maxMs,
      peak_udp_drops: udpDrops,
      gateway_cpu_us_per_request: usPerUnit.gateway,
      backend_cpu_us_per_request: usPerUnit.backend,
    }),
  });
} finally {
  await scenario.finish('gateway_profile', loadWindow);
}

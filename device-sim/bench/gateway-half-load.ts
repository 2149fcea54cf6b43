// p99 latency of the gateway end to end at half its peak: open loop at --rate requests/s (the
// runner passes half of gateway-peak's figure), so requests start on schedule, not when the
// previous answer arrives.
import type { ProfileWindow } from '../src/cpu-profile.ts';
import { runFleet } from '../src/fleet.ts';
import {
  emitResult, flag, loadPhaseCpu, printReport, say, startGatewayScenario,
} from './lib.ts';

const ratePerSec = Number(flag('rate') ?? 1000);
const durationSec = Number(flag('duration') ?? 10);

const scenario = await startGatewayScenario('bench-half-', { traceGcWhileProfiling: true });
const { deviceCount, devices, gateway, profile } = scenario;
let loadWindow: Promise<ProfileWindow | undefined> = Promise.resolve(undefined);
try {
  say(`gateway on 127.0.0.1:${gateway.port}; ${deviceCount} devices, open loop at ${ratePerSec}/s, ${durationSec} s (after 2 s warm-up)`);
  const common = { host: '127.0.0.1', port: gateway.port, scenario: 'normal', ratePerSec } as const;
  await runFleet({ ...common, devices: devices.slice(0, 200), durationSec: 2 });
  const watch = loadPhaseCpu({ gateway: gateway.pid }, gateway.logFile);
  const report = await runFleet({ ...common, devices, durationSec, warmup: true, onProgress: watch.onProgress });
  loadWindow = watch.window();
  printReport('gateway at half load', report);
  const usPerUnit = await watch.usPerRequest(report.requests.sent);
  const gc = await watch.gcPauses();
  const udpDrops = await watch.udpDrops();
  say(`CPU per request: gateway ${usPerUnit.gateway} us`);
  say(`during the load: gateway GC ${gc?.count} pauses, ${gc?.totalMs} ms in all, longest ${gc?.maxMs} ms, ${gc?.over20Ms} of 20 ms or more `
    + `(${gc?.markCompacts} mark-compact); UDP datagrams dropped for full receive buffers (machine-wide): ${udpDrops}`);
  emitResult(profile ? { profiled_p99_ms_at_half_load: report.requests.latencyMs.p99 } : {
    half_load_rps: ratePerSec,
    half_load_achieved_rps: Math.round(report.requests.asExpected / report.phasesSec.load),
    p99_ms_at_half_load: report.requests.latencyMs.p99,
    p50_ms_at_half_load: report.requests.latencyMs.p50,
    p90_ms_at_half_load: report.requests.latencyMs.p90,
    max_ms_at_half_load: report.requests.latencyMs.max,
    half_load_gateway_cpu_us_per_request: usPerUnit.gateway,
    half_load_gc_pause_max_ms: gc?.maxMs,
    half_load_gc_pauses_over_20ms: gc?.over20Ms,
    half_load_gc_pause_total_ms: gc?.totalMs,
    half_load_udp_drops: udpDrops,
  });
} finally {
  await scenario.finish('half_load_profile', loadWindow);
}

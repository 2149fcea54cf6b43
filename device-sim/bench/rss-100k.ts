// Gateway memory with 100,000 provisioned devices of which 10,000 are active: they log in and
// send readings (each device at least twice), so the gateway holds 10,000 verified tokens, its
// exchange table and its backend pool. RSS is read from /proc after the load, and the peak.
import { runFleet } from '../src/fleet.ts';
import {
  emitResult, flag, memoryOf, printReport, provision, say, startBackendProcess, startGatewayProcess, tempDir,
} from './lib.ts';

const provisioned = Number(flag('provisioned') ?? 100_000);
const active = Number(flag('active') ?? 10_000);
const concurrency = Number(flag('concurrency') ?? 128);

const state = await tempDir('bench-rss-');
const started = performance.now();
const devices = await provision(state.path, provisioned);
say(`provisioned ${provisioned} devices with the CLI in ${Math.round(performance.now() - started)} ms`);
const backend = await startBackendProcess();
const gateway = await startGatewayProcess({ stateDir: state.path, backendUrl: backend.url });
try {
  const idle = await memoryOf(gateway.pid);
  say(`gateway with ${provisioned} devices, idle: RSS ${idle.rssMb} MB`);
  const report = await runFleet({
    host: '127.0.0.1', port: gateway.port, scenario: 'normal', devices: devices.slice(0, active),
    concurrency, count: active * 2, loginConcurrency: 200, timeoutMs: 10_000,
  });
  printReport(`${active} active devices`, report);
  const after = await memoryOf(gateway.pid);
  say(`gateway RSS after ${active} devices logged in and sent: ${after.rssMb} MB (peak ${after.peakRssMb} MB)`);
  emitResult({
    rss_mb_100k_devices: after.rssMb,
    rss_peak_mb_100k_devices: after.peakRssMb,
    rss_idle_mb_100k_devices: idle.rssMb,
    rss_active_devices: report.devices.loggedIn,
    rss_provisioned_devices: provisioned,
  });
} finally {
  await gateway.stop();
  await backend.stop();
  await state.remove();
}

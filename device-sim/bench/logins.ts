// Logins per second: every request is a POST /auth with the device's credentials (CBOR), which
// costs the gateway a secret check and two ES256 signatures (access and refresh token).
import { runFleet } from '../src/fleet.ts';
import { emitResult, flag, printReport, provision, say, startBackendProcess, startGatewayProcess, tempDir } from './lib.ts';

const durationSec = Number(flag('duration') ?? 5);
const concurrency = Number(flag('concurrency') ?? 32);
const deviceCount = Number(flag('devices') ?? 1000);

const state = await tempDir('bench-logins-');
const devices = await provision(state.path, deviceCount);
const backend = await startBackendProcess();
const gateway = await startGatewayProcess({ stateDir: state.path, backendUrl: backend.url });
try {
  say(`gateway on 127.0.0.1:${gateway.port}; ${deviceCount} devices logging in, ${concurrency} in flight, ${durationSec} s (after 1 s warm-up)`);
  const common = { host: '127.0.0.1', port: gateway.port, scenario: 'login', concurrency } as const;
  await runFleet({ ...common, devices: devices.slice(0, 200), durationSec: 1 });
  const report = await runFleet({ ...common, devices, durationSec });
  printReport('logins', report);
  emitResult({
    login_rps: Math.round(report.requests.asExpected / report.phasesSec.load),
    login_p99_ms: report.requests.latencyMs.p99,
  });
} finally {
  await gateway.stop();
  await backend.stop();
  await state.remove();
}

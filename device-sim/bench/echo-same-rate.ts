// A control for gateway-half-load: the node-coap echo server driven open loop at the same rate.
// Its p99 is what the load generator, the kernel and node-coap add by themselves; what the
// gateway shows above it is the gateway's.
import { runFleet } from '../src/fleet.ts';
import { emitResult, flag, fleetIds, gatewayLikeToken, loadPhaseCpu, printReport, say, startEchoProcess } from './lib.ts';

const ratePerSec = Number(flag('rate') ?? 1000);
const durationSec = Number(flag('duration') ?? 10);
const deviceCount = Number(flag('devices') ?? 1000);

const echo = await startEchoProcess();
try {
  const devices = fleetIds(deviceCount).map((id) => ({ id, secret: Buffer.alloc(32) }));
  const token = await gatewayLikeToken(devices[0]!.id);
  say(`echo server on 127.0.0.1:${echo.port}; ${deviceCount} devices, open loop at ${ratePerSec}/s, ${durationSec} s (after 2 s warm-up)`);
  const common = { host: '127.0.0.1', port: echo.port, scenario: 'normal', staticToken: token, ratePerSec } as const;
  await runFleet({ ...common, devices: devices.slice(0, 200), durationSec: 2 });
  const watch = loadPhaseCpu({ server: echo.pid });
  const report = await runFleet({ ...common, devices, durationSec, warmup: true, onProgress: watch.onProgress });
  printReport('echo server at the gateway\'s half-load rate', report);
  const udpDrops = await watch.udpDrops();
  say(`UDP datagrams dropped for full receive buffers (machine-wide) during the load: ${udpDrops}`);
  emitResult({
    echo_p99_ms_at_half_load_rate: report.requests.latencyMs.p99,
    echo_p50_ms_at_half_load_rate: report.requests.latencyMs.p50,
    echo_half_load_udp_drops: udpDrops,
  });
} finally {
  await echo.stop();
}

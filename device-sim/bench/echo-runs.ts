// What the baseline scenarios share: an echo server in its own process (node-coap's, the ceiling;
// or the raw node:dgram one, the floor), driven by the same load generator and the same requests
// (token option included) as the gateway, closed loop at its peak or open loop at a given rate.
import { runFleet } from '../src/fleet.ts';
import { flag, fleetIds, loadPhaseCpu, printReport, say, startEchoProcess } from './lib.ts';
import { gatewayLikeToken } from './token-fixtures.ts';

export type EchoKind = 'node-coap' | 'raw';

const TITLE: Record<EchoKind, string> = { 'node-coap': 'node-coap echo', raw: 'raw node:dgram echo' };

async function withEcho<T>(kind: EchoKind, run: (echo: { port: number; pid: number }, devices: { id: string; secret: Buffer }[], token: string) => Promise<T>): Promise<T> {
  const deviceCount = Number(flag('devices') ?? 1000);
  const echo = await startEchoProcess({ raw: kind === 'raw' });
  try {
    const devices = fleetIds(deviceCount).map((id) => ({ id, secret: Buffer.alloc(32) }));
    return await run(echo, devices, await gatewayLikeToken(devices[0]!.id));
  } finally {
    await echo.stop();
  }
}

/** Closed loop, bounded in flight: the server's peak. */
export function echoPeak(kind: EchoKind) {
  const durationSec = Number(flag('duration') ?? 10);
  const concurrency = Number(flag('concurrency') ?? 64);
  return withEcho(kind, async (echo, devices, token) => {
    say(`${TITLE[kind]} on 127.0.0.1:${echo.port}; ${devices.length} devices, ${concurrency} in flight, ${durationSec} s (after 2 s warm-up)`);
    const common = { host: '127.0.0.1', port: echo.port, scenario: 'normal', staticToken: token, concurrency } as const;
    await runFleet({ ...common, devices: devices.slice(0, Math.max(concurrency, 200)), durationSec: 2 });
    const cpu = loadPhaseCpu({ server: echo.pid, generator: process.pid });
    const report = await runFleet({ ...common, devices, durationSec, warmup: true, onProgress: cpu.onProgress });
    const usPerUnit = await cpu.usPerRequest(report.requests.sent);
    printReport(`${TITLE[kind]}, peak`, report);
    say(`CPU per request: echo server ${usPerUnit.server} us, load generator ${usPerUnit.generator} us`);
    return {
      rps: Math.round(report.requests.asExpected / report.phasesSec.load),
      p99Ms: report.requests.latencyMs.p99,
      requestBytes: report.requests.bytes.sentPerRequest,
      serverCpuUs: usPerUnit.server,
      generatorCpuUs: usPerUnit.generator,
      unexpected: report.requests.sent - report.requests.asExpected,
    };
  });
}

/** Open loop at --rate requests/s: the control for the gateway's half-load run. */
export function echoAtRate(kind: EchoKind) {
  const ratePerSec = Number(flag('rate') ?? 1000);
  const durationSec = Number(flag('duration') ?? 10);
  return withEcho(kind, async (echo, devices, token) => {
    say(`${TITLE[kind]} on 127.0.0.1:${echo.port}; ${devices.length} devices, open loop at ${ratePerSec}/s, ${durationSec} s (after 2 s warm-up)`);
    const common = { host: '127.0.0.1', port: echo.port, scenario: 'normal', staticToken: token, ratePerSec } as const;
    await runFleet({ ...common, devices: devices.slice(0, 200), durationSec: 2 });
    const watch = loadPhaseCpu({ server: echo.pid });
    const report = await runFleet({ ...common, devices, durationSec, warmup: true, onProgress: watch.onProgress });
    printReport(`${TITLE[kind]} at the gateway's half-load rate`, report);
    const usPerUnit = await watch.usPerRequest(report.requests.sent);
    const udpDrops = await watch.udpDrops();
    say(`CPU per request: echo server ${usPerUnit.server} us; UDP datagrams dropped for full receive buffers (machine-wide) during the load: ${udpDrops}`);
    return {
      p99Ms: report.requests.latencyMs.p99,
      p50Ms: report.requests.latencyMs.p50,
      serverCpuUs: usPerUnit.server,
      udpDrops,
    };
  });
}

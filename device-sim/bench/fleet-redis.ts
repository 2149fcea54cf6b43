// One open-loop load (same rate, same duration, same devices) against (a) one gateway on the file
// store, (b) one gateway on Redis, (c) two gateway processes sharing one Redis, the devices split
// between them as a source-affine balancer would (each device always on the same gateway, half
// the rate each). Each configuration gets fresh processes (and a fresh redis-server). Reported:
// achieved throughput, p50/p99, CPU per request (the gateways' and Redis's, read from /proc over
// the load phase and divided by the requests the gateways themselves counted), store round
// trips per request, and how busy the machine's cores were.
//
// On two shared cores the second gateway, Redis, the backend and the load generator all run on
// the same two cores: (c) can show that sharing state through Redis costs little per request
// and that nothing breaks or diverges with two gateways; it cannot show scaling.
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runFleet, type FleetProgress } from '../src/fleet.ts';
import type { FleetReport } from '../src/report.ts';
import { makeAdminAccess, metricDelta, scrapeMetrics, type MetricTotals } from './admin-metrics.ts';
import {
  cpuSecondsOf, emitResult, flag, printReport, provision, round1, say,
  startBackendProcess, startGatewayProcess, startRedisProcess, tempDir, type GatewayProcess, type RedisProcess,
} from './lib.ts';

// Fixed, not derived from the peak: the comparison is of cost at one load all three carry with
// room to spare (about 40 % of the gateway's half-load rate on two cores), not of saturation.
const ratePerSec = Number(flag('rate') ?? 2000);
const durationSec = Number(flag('duration') ?? 8);
const deviceCount = Number(flag('devices') ?? 1000);
const STORE_CALLS = 'coap_gateway_store_calls_total';
const REQUESTS = 'coap_gateway_requests_total';

type ConfigName = 'file' | 'redis' | 'two';
const CONFIGS: readonly { name: ConfigName; label: string; gateways: number; redis: boolean }[] = [
  { name: 'file', label: '(a) one gateway, file store', gateways: 1, redis: false },
  { name: 'redis', label: '(b) one gateway, Redis', gateways: 1, redis: true },
  { name: 'two', label: '(c) two gateways sharing one Redis, devices split', gateways: 2, redis: true },
];

const FLEET_REDIS_NOTE = 'Two shared cores: the gateways, Redis, the HTTP backend and the load generator all run on the '
  + 'same two cores. (b)/(a) shows what sharing state through Redis costs per request; (c)/(b) shows that two gateways on '
  + 'one Redis keep serving the same load without errors, store calls or divergence. Neither can show scaling: two '
  + 'gateways cannot be faster than one when there are only two cores for everything.';

/** Busy and total jiffies of the whole machine (all cores), from /proc/stat. */
async function machineJiffies(): Promise<{ busy: number; total: number }> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!;
  const values = line.trim().split(/\s+/).slice(1).map(Number);
  const total = values.reduce((a, b) => a + b, 0);
  // idle and iowait
  return { busy: total - values[3]! - (values[4] ?? 0), total };
}

interface Sample {
  cpu: number[];
  machine: { busy: number; total: number };
  metrics: MetricTotals[];
}

async function runConfig(config: (typeof CONFIGS)[number]): Promise<Record<string, number>> {
  const state = await tempDir(`bench-fleet-${config.name}-`);
  let redis: RedisProcess | undefined;
  let backend: Awaited<ReturnType<typeof startBackendProcess>> | undefined;
  const gateways: GatewayProcess[] = [];
  try {
    const admin = await makeAdminAccess(join(state.path, 'pki'));
    redis = config.redis ? await startRedisProcess() : undefined;
    const store = redis?.url ?? 'file';
    // With Redis, every gateway has its own state directory (its private keys); the devices are in Redis.
    const stateDirOf = (g: number) => (config.redis ? join(state.path, `gateway-${g + 1}`) : state.path);
    if (config.redis) for (let g = 0; g < config.gateways; g += 1) await mkdir(stateDirOf(g), { mode: 0o700 });
    const devices = await provision(stateDirOf(0), deviceCount, ['telemetry:write'], store);
    backend = await startBackendProcess();
    // Default settings (a JSON log line per request, to a file), the same for every configuration.
    for (let g = 0; g < config.gateways; g += 1) {
      gateways.push(await startGatewayProcess({ stateDir: stateDirOf(g), backendUrl: backend.url, store, admin: admin.files }));
    }
    // Each device always goes to the same gateway (a source-affine balancer), at an equal share of the rate.
    const groups = gateways.map((_, g) => devices.filter((__, i) => i % gateways.length === g));
    const common = (g: number) => ({ host: '127.0.0.1', port: gateways[g]!.port, scenario: 'normal', ratePerSec: ratePerSec / gateways.length } as const);
    // JIT warm-up of every process, uncounted.
    await Promise.all(groups.map((group, g) => runFleet({ ...common(g), devices: group.slice(0, 200 / gateways.length), durationSec: 2 })));

    const pids = [...gateways.map((g) => g.pid), ...(redis !== undefined ? [redis.pid] : []), backend.pid, process.pid];
    const sample = async (): Promise<Sample> => ({
      cpu: await Promise.all(pids.map(cpuSecondsOf)),
      machine: await machineJiffies(),
      metrics: await Promise.all(gateways.map((g) => scrapeMetrics(g.adminPort!, admin.tls))),
    });
    // The window: from when the last fleet starts its load to when the first one stops sending.
    const loading = new Set<number>();
    let start: Promise<Sample> | undefined;
    let end: Promise<Sample> | undefined;
    const progressOf = (g: number) => (progress: FleetProgress) => {
      if (progress.phase === 'load' && !loading.has(g) && loading.add(g).size === gateways.length) start ??= sample();
      if (progress.phase === 'drain') end ??= sample();
    };
    const reports: FleetReport[] = await Promise.all(groups.map((group, g) =>
      runFleet({ ...common(g), devices: group, durationSec, warmup: true, onProgress: progressOf(g) })));
    const [before, after] = await Promise.all([start, end]);
    if (before === undefined || after === undefined) throw new Error(`${config.label}: no load phase`);

    for (const [g, report] of reports.entries()) printReport(`${config.label}${gateways.length > 1 ? `, gateway ${g + 1}` : ''}`, report);
    const served = gateways.map((_, g) => metricDelta(before.metrics[g]!, after.metrics[g]!, REQUESTS));
    const requests = served.reduce((a, b) => a + b, 0);
    const storeCalls = gateways.reduce((sum, _, g) => sum + metricDelta(before.metrics[g]!, after.metrics[g]!, STORE_CALLS), 0);
    const cpuUs = (i: number) => ((after.cpu[i]! - before.cpu[i]!) * 1e6) / Math.max(1, requests);
    const gatewayUs = gateways.reduce((sum, _, g) => sum + cpuUs(g), 0);
    const redisUs = redis !== undefined ? cpuUs(gateways.length) : 0;
    const machineBusy = (after.machine.busy - before.machine.busy) / Math.max(1, after.machine.total - before.machine.total);
    const rps = reports.reduce((sum, r) => sum + r.requests.asExpected / r.phasesSec.load, 0);
    // Percentiles of two halves do not merge: the worse half's is reported (each is printed above).
    const p50 = Math.max(...reports.map((r) => r.requests.latencyMs.p50));
    const p99 = Math.max(...reports.map((r) => r.requests.latencyMs.p99));
    const unexpected = reports.reduce((sum, r) => sum + r.requests.sent - r.requests.asExpected, 0);
    say(`${config.label}: ${Math.round(rps)} req/s as expected, p50 ${p50} ms, p99 ${p99} ms; CPU per request: gateway${gateways.length > 1 ? 's' : ''} `
      + `${round1(gatewayUs)} us${redis !== undefined ? `, Redis ${round1(redisUs)} us` : ''}, backend ${round1(cpuUs(pids.length - 2))} us, `
      + `load generator ${round1(cpuUs(pids.length - 1))} us; machine ${Math.round(machineBusy * 100)} % busy; `
      + `${storeCalls} store calls for ${requests} requests${gateways.length > 1 ? ` (${served.join(' + ')} by gateway)` : ''}; ${unexpected} unexpected`);
    const key = (field: string) => `fleet_${config.name}_${field}`;
    return {
      [key('rps')]: Math.round(rps),
      [key('p50_ms')]: p50,
      [key('p99_ms')]: p99,
      [key('cpu_us_per_request')]: round1(gatewayUs + redisUs),
      [key('gateway_cpu_us_per_request')]: round1(gatewayUs),
      ...(redis !== undefined ? { [key('redis_cpu_us_per_request')]: round1(redisUs) } : {}),
      [key('backend_cpu_us_per_request')]: round1(cpuUs(pids.length - 2)),
      [key('generator_cpu_us_per_request')]: round1(cpuUs(pids.length - 1)),
      [key('machine_busy')]: Math.round(machineBusy * 100) / 100,
      [key('store_calls_per_request')]: Math.round((storeCalls / Math.max(1, requests)) * 1000) / 1000,
      [key('unexpected')]: unexpected,
      ...(gateways.length > 1 ? { [key('share_min')]: Math.round((Math.min(...served) / Math.max(1, requests)) * 1000) / 1000 } : {}),
    };
  } finally {
    for (const gateway of gateways) await gateway.stop();
    await backend?.stop();
    await redis?.stop();
    await state.remove();
  }
}

say(`open loop at ${ratePerSec}/s, ${deviceCount} devices, ${durationSec} s each (after a 2 s warm-up), against each configuration in turn`);
const results: Record<string, number | string> = { fleet_rate_per_s: ratePerSec, fleet_devices: deviceCount, fleet_duration_sec: durationSec };
for (const config of CONFIGS) Object.assign(results, await runConfig(config));
say(FLEET_REDIS_NOTE);
emitResult({ ...results, fleet_redis_note: FLEET_REDIS_NOTE });

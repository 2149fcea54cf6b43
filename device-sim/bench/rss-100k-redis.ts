// rss-100k.ts on the Redis store: 100,000 devices provisioned in a redis-server of our own, of
// which 10,000 log in and send readings (each at least twice). The gateway holds only the
// devices it has seen (its view: read from its metrics), not the registry, which lives in Redis;
// Redis's own RSS is reported beside the gateway's.
import { join } from 'node:path';
import { runFleet } from '../src/fleet.ts';
import { makeAdminAccess, scrapeMetrics } from './admin-metrics.ts';
import {
  emitResult, flag, memoryOf, printReport, provision, say, startBackendProcess, startGatewayProcess, startRedisProcess, tempDir,
} from './lib.ts';

const provisioned = Number(flag('provisioned') ?? 100_000);
const active = Number(flag('active') ?? 10_000);
const concurrency = Number(flag('concurrency') ?? 128);

const state = await tempDir('bench-rss-redis-');
const redis = await startRedisProcess();
let backend: Awaited<ReturnType<typeof startBackendProcess>> | undefined;
let gateway: Awaited<ReturnType<typeof startGatewayProcess>> | undefined;
try {
  const admin = await makeAdminAccess(join(state.path, 'pki'));
  const started = performance.now();
  const devices = await provision(state.path, provisioned, ['telemetry:write'], redis.url);
  const redisProvisioned = await memoryOf(redis.pid);
  say(`provisioned ${provisioned} devices in Redis in ${Math.round(performance.now() - started)} ms; redis-server RSS ${redisProvisioned.rssMb} MB`);
  backend = await startBackendProcess();
  gateway = await startGatewayProcess({ stateDir: state.path, backendUrl: backend.url, store: redis.url, admin: admin.files });
  const idle = await memoryOf(gateway.pid);
  say(`gateway on Redis with ${provisioned} devices, idle: RSS ${idle.rssMb} MB`);
  const report = await runFleet({
    host: '127.0.0.1', port: gateway.port, scenario: 'normal', devices: devices.slice(0, active),
    concurrency, count: active * 2, loginConcurrency: 200, timeoutMs: 10_000,
  });
  printReport(`${active} active devices`, report);
  const after = await memoryOf(gateway.pid);
  const viewEntries = (await scrapeMetrics(gateway.adminPort!, admin.tls)).get('coap_gateway_device_view_entries');
  const redisAfter = await memoryOf(redis.pid);
  say(`gateway RSS after ${active} devices logged in and sent: ${after.rssMb} MB (peak ${after.peakRssMb} MB); `
    + `its device view holds ${viewEntries} devices; redis-server RSS ${redisAfter.rssMb} MB`);
  emitResult({
    rss_mb_100k_devices_redis: after.rssMb,
    rss_peak_mb_100k_devices_redis: after.peakRssMb,
    rss_idle_mb_100k_devices_redis: idle.rssMb,
    rss_view_entries_redis: viewEntries,
    redis_server_rss_mb_100k_devices: redisAfter.rssMb,
    rss_active_devices_redis: report.devices.loggedIn,
    rss_provisioned_devices_redis: provisioned,
  });
} finally {
  await gateway?.stop();
  await backend?.stop();
  await redis.stop();
  await state.remove();
}

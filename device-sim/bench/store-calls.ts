// Store round trips per request, on each backend, as the gateway itself counts them
// (`coap_gateway_store_calls_total` on its admin API, read between phases): while idle, per
// login, per first request with a new token (a signature check), per request with a token the
// gateway has verified before (target: 0, the device view and the token cache answer it), and per
// login of a device the gateway has seen before.
// Each backend gets a fresh gateway process, backend process and, for Redis, its own redis-server.
import { DeviceClient } from '../src/device-client.ts';
import { makeAdminAccess, metricDelta, scrapeMetrics, type MetricTotals } from './admin-metrics.ts';
import {
  emitResult, flag, provision, say, startBackendProcess, startGatewayProcess, startRedisProcess, tempDir,
} from './lib.ts';

const deviceCount = Number(flag('devices') ?? 500);
const rounds = Number(flag('rounds') ?? 5);
const concurrency = Number(flag('concurrency') ?? 64);
const IDLE_MS = 1000;
const STORE_CALLS = 'coap_gateway_store_calls_total';
const REQUESTS = 'coap_gateway_requests_total';

/** Runs `task` on every item, at most `limit` at once. */
async function inTurn<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await task(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

const round3 = (value: number) => Math.round(value * 1000) / 1000;

async function measure(backend: 'file' | 'redis'): Promise<Record<string, number>> {
  const state = await tempDir(`bench-store-calls-${backend}-`);
  const redis = backend === 'redis' ? await startRedisProcess() : undefined;
  const clients: DeviceClient[] = [];
  let httpBackend: Awaited<ReturnType<typeof startBackendProcess>> | undefined;
  let gateway: Awaited<ReturnType<typeof startGatewayProcess>> | undefined;
  try {
    const admin = await makeAdminAccess(`${state.path}/pki`);
    const store = redis?.url ?? 'file';
    const devices = await provision(state.path, deviceCount, ['telemetry:write'], store);
    httpBackend = await startBackendProcess();
    gateway = await startGatewayProcess({ stateDir: state.path, backendUrl: httpBackend.url, store, admin: admin.files, args: ['--log-level', 'warn'] });
    const adminPort = gateway.adminPort!;
    const scrape = () => scrapeMetrics(adminPort, admin.tls);
    for (let i = 0; i < devices.length; i += 1) clients.push(await DeviceClient.open('127.0.0.1', gateway.port, { timeoutMs: 10_000 }));

    const tokens: string[] = [];
    let unexpected = 0;
    const reading = async (i: number, seq: number) => {
      const answer = await clients[i]!.send({ method: 'POST', path: '/telemetry/temperature', body: new Map([['celsius', 20], ['seq', seq]]), token: tokens[i]! });
      if (answer.code !== '2.01') unexpected += 1;
    };
    const indices = devices.map((_, i) => i);
    const phases: { name: string; count: number; before: MetricTotals; after: MetricTotals }[] = [];
    const phase = async (name: string, count: number, work: () => Promise<void>) => {
      const before = await scrape();
      await work();
      phases.push({ name, count, before, after: await scrape() });
    };

    await phase('idle', 1, () => new Promise((resolve) => setTimeout(resolve, IDLE_MS)));
    await phase('login', devices.length, () => inTurn(indices, concurrency, async (i) => {
      const { tokens: issued } = await clients[i]!.login(devices[i]!.id, devices[i]!.secret);
      if (issued === undefined) throw new Error(`${devices[i]!.id} could not log in`);
      tokens[i] = issued.accessToken;
    }));
    await phase('first', devices.length, () => inTurn(indices, concurrency, (i) => reading(i, 0)));
    const cached = Array.from({ length: rounds }, () => indices).flat();
    await phase('cached', cached.length, () => inTurn(cached, concurrency, (i) => reading(i, 1)));
    // The same devices log in again: the gateway's view holds them now.
    await phase('relogin', devices.length, () => inTurn(indices, concurrency, async (i) => {
      const { tokens: issued } = await clients[i]!.login(devices[i]!.id, devices[i]!.secret);
      if (issued === undefined) throw new Error(`${devices[i]!.id} could not log in again`);
    }));

    const perUnit = (name: string) => {
      const p = phases.find((x) => x.name === name)!;
      return { calls: metricDelta(p.before, p.after, STORE_CALLS), requests: metricDelta(p.before, p.after, REQUESTS), count: p.count };
    };
    const idle = perUnit('idle');
    const login = perUnit('login');
    const first = perUnit('first');
    const steady = perUnit('cached');
    const relogin = perUnit('relogin');
    say(`${backend}: ${deviceCount} devices; store calls: ${idle.calls} in ${IDLE_MS} ms idle, ${login.calls} for ${login.count} logins, `
      + `${first.calls} for ${first.count} first requests (new tokens), ${steady.calls} for ${steady.count} requests with cached tokens `
      + `(the gateway counted ${steady.requests} requests in that phase; ${unexpected} answers other than 2.01), `
      + `${relogin.calls} for ${relogin.count} logins again (devices the gateway's view holds)`);
    return {
      [`store_calls_per_cached_request_${backend}`]: round3(steady.calls / steady.count),
      [`store_calls_per_first_request_${backend}`]: round3(first.calls / first.count),
      [`store_calls_per_login_${backend}`]: round3(login.calls / login.count),
      [`store_calls_per_login_again_${backend}`]: round3(relogin.calls / relogin.count),
      [`store_calls_idle_per_s_${backend}`]: round3(idle.calls / (IDLE_MS / 1000)),
      [`store_calls_cached_requests_${backend}`]: steady.count,
      [`store_calls_unexpected_${backend}`]: unexpected,
    };
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await gateway?.stop();
    await httpBackend?.stop();
    await redis?.stop();
    await state.remove();
  }
}

say(`store calls per request: ${deviceCount} devices log in, send once with the new token, then ${rounds} times each with it cached (${concurrency} in flight)`);
emitResult({ ...(await measure('file')), ...(await measure('redis')) });

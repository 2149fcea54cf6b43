// Reading a gateway's Prometheus counters from its admin API (HTTPS, mutual TLS on loopback),
// as an operator's scraper would: the benchmarks that count store calls need the gateway's own
// figure, not an estimate from outside.
import { readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { makeDevPki } from '../../certs/pki.ts';
import type { AdminFiles } from './processes.ts';

/** Slower than this and the scrape is a failure of the benchmark, not a figure. */
const SCRAPE_LIMIT_MS = 5000;

export interface AdminAccess {
  /** For `gateway serve --admin-*`. */
  files: AdminFiles;
  /** What the scraper presents: the admin CA it trusts, and the admin client certificate. */
  tls: { ca: string; cert: string; key: string };
}

/** The dev PKI (what `make certs` makes) in `dir`: server files for the gateway, a client certificate for us. */
export async function makeAdminAccess(dir: string): Promise<AdminAccess> {
  const { paths } = makeDevPki(dir);
  return {
    files: { certFile: paths.adminServer.certPath, keyFile: paths.adminServer.keyPath, caFile: paths.adminCa.certPath },
    tls: {
      ca: await readFile(paths.adminCa.certPath, 'utf8'),
      cert: await readFile(paths.adminClient.certPath, 'utf8'),
      key: await readFile(paths.adminClient.keyPath, 'utf8'),
    },
  };
}

/** Sample values by family name, summed over labels (`coap_gateway_requests_total` across routes and codes). */
export type MetricTotals = ReadonlyMap<string, number>;

/** GET /metrics, each family's samples summed. */
export async function scrapeMetrics(adminPort: number, tls: AdminAccess['tls']): Promise<MetricTotals> {
  const text = await new Promise<string>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: adminPort, path: '/metrics', servername: 'localhost', agent: false, timeout: SCRAPE_LIMIT_MS, ...tls },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => (res.statusCode === 200
          ? resolve(Buffer.concat(chunks).toString('utf8'))
          : reject(new Error(`GET /metrics answered ${res.statusCode}`))));
      });
    req.on('timeout', () => req.destroy(new Error(`GET /metrics took over ${SCRAPE_LIMIT_MS} ms`)));
    req.on('error', reject);
    req.end();
  });
  const totals = new Map<string, number>();
  for (const line of text.split('\n')) {
    // Label values are quoted and may hold braces (a route such as /telemetry/{name}).
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})? (\S+)/.exec(line);
    if (sample === null) continue;
    totals.set(sample[1]!, (totals.get(sample[1]!) ?? 0) + Number(sample[2]));
  }
  return totals;
}

/** `after - before` of one family (0 when absent from both). */
export function metricDelta(before: MetricTotals, after: MetricTotals, name: string): number {
  return (after.get(name) ?? 0) - (before.get(name) ?? 0);
}

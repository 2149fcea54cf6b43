import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SinkBackend {
  url: string;
  /** Requests answered so far. */
  count(): number;
  close(): Promise<void>;
}

const STORED = JSON.stringify({ stored: true });
const CONFIG = JSON.stringify({ interval_s: 60, threshold: 25.5, firmware: '1.4.2' });
const TELEMETRY = /^\/devices\/[^/]+\/telemetry\/[^/]+$/;
const CONFIG_PATH = /^\/devices\/[^/]+\/config$/;

/**
 * The load tests' backend: answers like the demo backend (201 for a reading, the device's config
 * for GET /config) but keeps nothing, so it stays small and fast however long the run.
 */
export async function buildSinkBackend(host = '127.0.0.1', port = 0): Promise<SinkBackend> {
  let answered = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.once('end', () => {
      answered += 1;
      const path = req.url ?? '/';
      if (TELEMETRY.test(path) && req.method === 'POST') return reply(res, 201, STORED);
      if (TELEMETRY.test(path) && req.method === 'PUT') return void res.writeHead(204).end();
      if (CONFIG_PATH.test(path) && req.method === 'GET') return reply(res, 200, CONFIG, { 'cache-control': 'max-age=60' });
      return reply(res, 404, '{"error":"not found"}');
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  const address = server.address() as AddressInfo;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`,
    count: () => answered,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

function reply(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers }).end(body);
}

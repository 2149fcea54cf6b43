import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SinkBackend {
  url: string;
  /** Requests answered so far. */
  count(): number;
  close(): Promise<void>;
}

/** What the sink received, for `device-sim backend --print`. */
export interface ReceivedRequest {
  method: string;
  path: string;
  /** The X-Device-Id header the gateway sets (the token's subject), or null without one. */
  deviceId: string | null;
  /** The body as JSON when it parses as JSON, else its text cut to PRINTED_TEXT_CHARS; null when empty. */
  body: unknown;
}

export interface SinkBackendOptions {
  /** Called once per request, after its body arrived; without it bodies are not read at all. */
  onRequest?: (request: ReceivedRequest) => void;
}

const STORED = JSON.stringify({ stored: true });
const CONFIG = JSON.stringify({ interval_s: 60, threshold: 25.5, firmware: '1.4.2' });
const TELEMETRY = /^\/devices\/[^/]+\/telemetry\/[^/]+$/;
const CONFIG_PATH = /^\/devices\/[^/]+\/config$/;
/** Bodies kept for printing, at most: the gateway's maxPayloadBytes is 16 KiB by default. */
const MAX_PRINTED_BODY_BYTES = 64 * 1024;
const PRINTED_TEXT_CHARS = 200;

/**
 * The load tests' backend: answers like the demo backend (201 for a reading, the device's config
 * for GET /config) but keeps nothing, so it stays small and fast however long the run.
 */
export async function buildSinkBackend(host = '127.0.0.1', port = 0, options: SinkBackendOptions = {}): Promise<SinkBackend> {
  const { onRequest } = options;
  let answered = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    if (onRequest === undefined) req.resume();
    else {
      req.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes <= MAX_PRINTED_BODY_BYTES) chunks.push(chunk);
      });
    }
    req.once('end', () => {
      answered += 1;
      const path = req.url ?? '/';
      onRequest?.({ method: req.method ?? '', path, deviceId: headerText(req.headers['x-device-id']), body: printable(Buffer.concat(chunks)) });
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

function headerText(value: string | string[] | undefined): string | null {
  return (Array.isArray(value) ? value[0] : value) ?? null;
}

function printable(body: Buffer): unknown {
  if (body.length === 0) return null;
  const text = body.toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text.length > PRINTED_TEXT_CHARS ? `${text.slice(0, PRINTED_TEXT_CHARS)}...` : text;
  }
}

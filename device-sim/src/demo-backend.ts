import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createLocalJWKSet, createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey } from 'jose';

export interface DemoBackendOptions {
  host?: string;
  port?: number;
  /** PEM key and certificate: serve HTTPS. */
  tls?: { key: string | Buffer; cert: string | Buffer };
  /**
   * Verify every forwarded `Authorization: Bearer` token with the gateway's public keys: a JWKS
   * URL (the admin API's /.well-known/jwks.json) or a function returning the JWKS document.
   */
  jwks?: URL | (() => Promise<{ keys: object[] }>);
  issuer?: string;
  audience?: string;
}

export interface ReceivedRequest {
  method: string;
  path: string;
  deviceId: string | undefined;
  requestId: string | undefined;
  contentType: string | undefined;
  body: unknown;
  /** The verified token's `sec` claim: 'oscore' when the request crossed the radio protected by OSCORE (absent: in clear). */
  sec: string | undefined;
}

/**
 * The demo backend: what a backend team writes behind the gateway. Telemetry is stored (in
 * memory), configuration is served as JSON, and each forwarded token is verified with the
 * gateway's JWKS so a forged request is refused even if it bypasses the gateway.
 */
export async function buildDemoBackend(options: DemoBackendOptions = {}) {
  const received: ReceivedRequest[] = [];
  let refused = 0;
  let getKey: JWTVerifyGetKey | undefined;
  if (options.jwks instanceof URL) getKey = createRemoteJWKSet(options.jwks);
  else if (options.jwks !== undefined) {
    const load = options.jwks;
    getKey = async (header, token) => createLocalJWKSet((await load()) as never)(header, token);
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const raw = await readBody(req);
    const deviceId = header(req, 'x-device-id');
    let sec: string | undefined;
    if (getKey !== undefined) {
      const token = /^Bearer (.+)$/.exec(header(req, 'authorization') ?? '')?.[1];
      try {
        if (token === undefined) throw new Error('no bearer token');
        const { payload } = await jwtVerify(token, getKey, { issuer: options.issuer, audience: options.audience });
        if (payload.sub !== deviceId) throw new Error('token subject differs from X-Device-Id');
        if (typeof payload.sec === 'string') sec = payload.sec;
      } catch {
        refused += 1;
        return send(res, 401, { error: 'invalid token' });
      }
    }
    let body: unknown = raw.toString('utf8');
    if (header(req, 'content-type')?.startsWith('application/json') === true) body = JSON.parse(raw.toString('utf8'));
    const path = req.url ?? '/';
    received.push({ method: req.method ?? '', path, deviceId, requestId: header(req, 'x-request-id'), contentType: header(req, 'content-type'), body, sec });
    if (/^\/devices\/[^/]+\/telemetry\/[^/]+$/.test(path) && (req.method === 'POST' || req.method === 'PUT')) {
      return req.method === 'POST' ? send(res, 201, { stored: true, seq: received.length }) : send(res, 204);
    }
    if (/^\/devices\/[^/]+\/config$/.test(path) && req.method === 'GET') {
      return send(res, 200, { interval_s: 60, threshold: 25.5, firmware: '1.4.2' }, { 'cache-control': 'max-age=60' });
    }
    return send(res, 404, { error: 'not found' });
  };

  const listener = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch(() => send(res, 400, { error: 'bad request' }));
  };
  const server: Server = options.tls !== undefined ? createHttpsServer(options.tls, listener) : createHttpServer(listener);
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const scheme = options.tls !== undefined ? 'https' : 'http';

  return {
    url: `${scheme}://localhost:${port}`,
    received,
    refusedCount: () => refused,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

export type DemoBackend = Awaited<ReturnType<typeof buildDemoBackend>>;

function send(res: ServerResponse, status: number, body?: object, headers: Record<string, string> = {}): void {
  if (body === undefined) {
    res.writeHead(status, headers).end();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

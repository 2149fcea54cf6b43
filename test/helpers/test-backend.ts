import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export type BackendHandler = (req: RecordedRequest, res: ServerResponse) => void | Promise<void>;

/** A real HTTP(S) server as the backend; each test decides how it answers and reads what it got. */
export async function startTestBackend(tls?: { key: string; cert: string }) {
  const requests: RecordedRequest[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  let handler: BackendHandler = (req, res) => {
    const status = req.method === 'GET' ? 200 : req.method === 'POST' ? 201 : 204;
    if (status === 204) return void res.writeHead(204).end();
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, path: req.url }));
  };
  const listener = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const recorded = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) };
      requests.push(recorded);
      for (const w of waiters.filter((w) => requests.length >= w.count)) w.resolve();
      void Promise.resolve(handler(recorded, res)).catch(() => res.destroy());
    });
  };
  const server: Server = tls ? createHttpsServer(tls, listener) : createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `${tls ? 'https' : 'http'}://localhost:${port}`,
    port,
    requests,
    setHandler(next: BackendHandler) {
      handler = next;
    },
    /** Resolves once `count` requests in total have arrived. */
    waitForRequests(count: number): Promise<void> {
      if (requests.length >= count) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ count, resolve }));
    },
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

export type TestBackend = Awaited<ReturnType<typeof startTestBackend>>;

import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { connect as connectTcp, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { connect, type TLSSocket } from 'node:tls';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { listDevices } from '../../gateway/src/admin/provision.ts';
import { buildAdminServer, createFleetKeys, createMetrics, type AdminServer } from '../../gateway/src/admin/index.ts';
import { Keystore } from '../../gateway/src/auth/index.ts';
import { DEFAULTS } from '../../gateway/src/config/index.ts';
import { REDACT_PATHS } from '../../gateway/src/log/index.ts';
import { buildFileStore } from '../../gateway/src/store/index.ts';
import { adminRequest, makeAdminPki, type AdminPki, type ClientTls } from '../helpers/admin-client.ts';
import { startHarness } from '../helpers/harness.ts';

// The admin API has a body limit (413), request timeouts, and nothing a request does takes the
// process down. tap fails a test on an unhandled rejection or uncaught exception, so the crash a
// 100 KB POST once caused fails here even before the assertions.

/** How long a wait may take before it fails the test (a failure guard, never a sync point). */
const GUARD_MS = 5000;
const BODY_BYTES = 100 * 1024;

let pki: AdminPki;
t.before(async () => {
  pki = await makeAdminPki(t);
});

/** A JSON body that would provision a device if it were read: proof that it was not. */
const largeDeviceBody = (bytes: number): string => {
  const head = '{"id":"big-1","pad":"';
  return `${head}${'x'.repeat(bytes - head.length - 2)}"}`;
};

interface Answer {
  status: number;
  text: string;
  headers: Record<string, string | string[] | undefined>;
}

/**
 * POSTs a large body, with Content-Length or chunked, in 16 KB writes. Resolves with the answer
 * once it has arrived; the server may close the connection right after answering (it does not
 * read a body over its limit), so an error after the answer is expected, and one before it is not.
 */
function postLarge(port: number, tls: ClientTls, path: string, body: string, chunked: boolean): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let answer: Answer | undefined;
    const req = request({
      host: '127.0.0.1', port, method: 'POST', path, agent: false, servername: 'localhost', ...tls,
      headers: chunked ? { 'content-type': 'application/json' }
        : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    }, (res) => {
      const chunks: Buffer[] = [];
      const done = () => {
        answer = { status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), headers: res.headers };
        resolve(answer);
      };
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', done);
      res.on('error', done);
    });
    req.on('error', (err) => {
      if (answer === undefined) reject(err);
    });
    for (let i = 0; i < body.length; i += 16 * 1024) req.write(body.slice(i, i + 16 * 1024));
    req.end();
  });
}

t.test('a POST of 100 KB gets 413 without being read, and the gateway keeps serving', async (t) => {
  const h = await startHarness(t, { config: pki.config });
  const ports = h.gateway.adminAddress()!;
  const body = largeDeviceBody(BODY_BYTES);
  for (const chunked of [false, true]) {
    const how = chunked ? 'chunked' : 'with Content-Length';
    const res = await postLarge(ports.port, pki.client, '/devices', body, chunked);
    t.equal(res.status, 413, `${how}: 413`);
    t.match(JSON.parse(res.text), { error: 'GW_ERR_ADMIN_BODY_TOO_LARGE', message: String }, `${how}: says why`);
    t.equal(res.headers.connection, 'close', `${how}: the connection is closed rather than the rest read`);
  }
  const jwks = await postLarge(ports.jwksPort!, pki.anonymous, '/.well-known/jwks.json', body, false);
  t.equal(jwks.status, 413, 'the JWKS port (no client certificate) refuses it too');
  const rotate = await postLarge(ports.port, pki.client, '/keys/rotate', largeDeviceBody(BODY_BYTES), true);
  t.equal(rotate.status, 413, 'POST /keys/rotate: 413');

  t.same((await listDevices(h.gateway.store)), [], 'nothing was provisioned from the body');
  const lines = h.logs.filter((l) => l.msg === 'admin request' && l.status === 413);
  t.equal(lines.length, 4, 'each refusal logged as a 413');
  t.match(lines[0], { method: 'POST', path: '/devices', client: 'admin' }, 'with the client\'s CN');
  t.same(h.logs.filter((l) => l.level === 50), [], 'no error logged');

  const health = await adminRequest(ports.port, 'GET', '/healthz', { tls: pki.client });
  t.equal(health.status, 200, 'the admin API still answers');
  const added = await adminRequest(ports.port, 'POST', '/devices', { tls: pki.client, body: { id: 'small-1' } });
  t.equal(added.status, 201, 'a body under the limit is still read');
  await h.assertStillServes(t);
});

interface LogSink {
  lines: Record<string, unknown>[];
  /** Resolves with the first line (already written or to come) that matches; fails after GUARD_MS. */
  next(match: (line: Record<string, unknown>) => boolean, what: string): Promise<Record<string, unknown>>;
}

function logSink(): { sink: Writable; log: LogSink } {
  const lines: Record<string, unknown>[] = [];
  const waiters: { match: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const text of chunk.toString('utf8').split('\n')) {
        if (text === '') continue;
        const line = JSON.parse(text) as Record<string, unknown>;
        lines.push(line);
        for (const w of waiters.filter((x) => x.match(line))) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
      done();
    },
  });
  const log: LogSink = {
    lines,
    next(match, what) {
      const seen = lines.find(match);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no log line within ${GUARD_MS} ms: ${what}`)), GUARD_MS);
        timer.unref();
        waiters.push({ match, resolve: (line) => { clearTimeout(timer); resolve(line); } });
      });
    },
  };
  return { sink, log };
}

const TIGHT = { headersTimeoutMs: 300, requestTimeoutMs: 600, keepAliveTimeoutMs: 300, handshakeTimeoutMs: 300 };

/** The admin API alone, with small timeouts (buildAdminServer's options) so a test need not wait 10 s. */
async function startAdmin(t: Test, health: () => Promise<{ ok: boolean }> = async () => ({ ok: true })): Promise<{ admin: AdminServer; port: number; log: LogSink }> {
  const dir = await mkdtemp(join(tmpdir(), 'gw-admin-'));
  const store = await buildFileStore(dir);
  const keystore = await Keystore.open({ dir: join(dir, 'keys'), signingAlg: 'ES256', maxTokenLifetimeSec: undefined, nowMs: Date.now }, true);
  const { sink, log } = logSink();
  const logger = pino({ level: 'info', redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, sink);
  const admin = await buildAdminServer({
    host: '127.0.0.1', port: 0, jwksPort: undefined,
    certFile: pki.paths.adminServer.certPath, keyFile: pki.paths.adminServer.keyPath, caFile: pki.paths.adminCa.certPath,
    keystore, fleetKeys: createFleetKeys(keystore, store), store, metrics: createMetrics(() => keystore), logger, health, ...TIGHT,
    tokenTtlSec: DEFAULTS.tokenTtlSec, leewaySec: DEFAULTS.leewaySec,
  });
  t.teardown(async () => {
    await admin.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { admin, port: admin.address().port, log };
}

/** A mutual-TLS connection as the admin client, handshake completed. */
function openTls(t: Test, port: number): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ...pki.client }, () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
    t.teardown(() => { socket.destroy(); });
  });
}

/** Everything the server sent, once it has closed the connection; rejects if it is still open after GUARD_MS. */
function closedByServer(socket: Socket, what: string): Promise<string> {
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('error', () => undefined);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: still open after ${GUARD_MS} ms`)), GUARD_MS);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
  });
}

t.test('slow clients are cut off: unfinished headers, an unfinished body, an idle connection, no TLS handshake', async (t) => {
  const { port, log } = await startAdmin(t);

  const slowHeaders = await openTls(t, port);
  const headersClosed = closedByServer(slowHeaders, 'headers never finished');
  slowHeaders.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ');
  t.match(await headersClosed, /^HTTP\/1\.1 408 /, 'headers never finished: 408, then closed');

  const slowBody = await openTls(t, port);
  const bodyClosed = closedByServer(slowBody, 'body never finished');
  slowBody.write('POST /devices HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"id":');
  await bodyClosed;
  t.pass('a body that never finishes: closed by the request timeout');

  const idle = await openTls(t, port);
  const idleClosed = closedByServer(idle, 'idle keep-alive connection');
  idle.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
  t.match(await idleClosed, /^HTTP\/1\.1 200 /, 'answered, then the idle connection is closed by the keep-alive timeout');

  const silent = connectTcp({ host: '127.0.0.1', port });
  t.teardown(() => { silent.destroy(); });
  await closedByServer(silent, 'TCP connection with no TLS handshake');
  t.pass('a connection that never starts its TLS handshake: closed by the handshake timeout');

  await log.next((l) => l.code === 'ERR_HTTP_REQUEST_TIMEOUT', 'the timeout logged');
  t.equal((await adminRequest(port, 'GET', '/healthz', { tls: pki.client })).status, 200, 'the admin API still answers');
});

t.test('oversized headers get 431; a client that resets mid-body is forgotten; the API still answers', async (t) => {
  const { port, log } = await startAdmin(t);

  const bigHeaders = await openTls(t, port);
  const bigClosed = closedByServer(bigHeaders, 'oversized headers');
  bigHeaders.write(`GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
  t.match(await bigClosed, /^HTTP\/1\.1 431 /, 'headers over 16 KB: 431, then closed');

  const quitter = await openTls(t, port);
  // end(), not destroy(): what was written reaches the server before the connection goes.
  quitter.end('POST /keys/rotate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"alg":');
  const gone = await log.next((l) => l.msg === 'admin request' && l.path === '/keys/rotate', 'the abandoned request logged');
  t.equal(gone.status, undefined, 'no answer for a client that left');
  t.same(log.lines.filter((l) => l.level === 50), [], 'nothing logged as an error');
  t.equal((await adminRequest(port, 'GET', '/healthz', { tls: pki.client })).status, 200, 'the admin API still answers');
});

t.test('an unexpected error in a handler is a logged 500, and the next request is served', async (t) => {
  let broken = true;
  const { port, log } = await startAdmin(t, async () => {
    if (broken) throw new TypeError('health check broke');
    return { ok: true };
  });
  const failed = await adminRequest(port, 'GET', '/healthz', { tls: pki.client });
  t.equal(failed.status, 500);
  t.same(failed.json(), { error: 'GW_ERR_ADMIN_INTERNAL', message: 'internal error' }, 'the client learns nothing of the cause');
  const logged = await log.next((l) => l.msg === 'admin request failed', 'the error logged');
  t.match(logged, { level: 50, err: { message: 'health check broke' } }, 'the log learns why');
  broken = false;
  t.equal((await adminRequest(port, 'GET', '/healthz', { tls: pki.client })).status, 200, 'the next request is served');
});

import t, { type Test } from 'tap';
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { issueCertificate, makeDevPki, type DevPkiPaths, type KeyAndCert, type KeyCertPaths } from '../../certs/pki.ts';

const DAY_MS = 24 * 60 * 60 * 1000;
const CLIENT_AUTH_OID = '1.3.6.1.5.5.7.3.2';
const SERVER_AUTH_OID = '1.3.6.1.5.5.7.3.1';

function allFiles(paths: DevPkiPaths): string[] {
  const pairs: KeyCertPaths[] = [paths.ca, paths.backend, paths.adminCa, paths.adminServer, paths.adminClient];
  return pairs.flatMap((pair) => [pair.keyPath, pair.certPath]);
}

function load(pair: KeyCertPaths): KeyAndCert {
  return { keyPem: readFileSync(pair.keyPath, 'utf8'), certPem: readFileSync(pair.certPath, 'utf8') };
}

function snapshot(files: string[]): Array<{ file: string; mtimeMs: number; content: string }> {
  return files.map((file) => ({ file, mtimeMs: statSync(file).mtimeMs, content: readFileSync(file, 'utf8') }));
}

const dir = t.testdir();
const first = makeDevPki(dir);
const { paths } = first;

t.test('creates every file of the dev PKI', async (t) => {
  const names = allFiles(paths).map((file) => file.slice(paths.dir.length + 1));
  t.same(names.sort(), [
    'admin-ca.cert.pem',
    'admin-ca.key.pem',
    'admin-client.cert.pem',
    'admin-client.key.pem',
    'admin-server.cert.pem',
    'admin-server.key.pem',
    'backend.cert.pem',
    'backend.key.pem',
    'ca.cert.pem',
    'ca.key.pem',
  ]);
  t.same([...first.written].sort(), allFiles(paths).sort());
  t.equal(first.upToDate, false);
  for (const file of allFiles(paths)) t.ok(existsSync(file), file);
});

t.test('private keys are readable by the owner only', async (t) => {
  for (const file of allFiles(paths)) {
    const mode = statSync(file).mode & 0o777;
    t.equal(mode, file.endsWith('.key.pem') ? 0o600 : 0o644, `${file} mode ${mode.toString(8)}`);
  }
});

t.test('a second run changes nothing', async (t) => {
  const before = snapshot(allFiles(paths));
  const second = makeDevPki(dir);
  t.equal(second.upToDate, true);
  t.same(second.written, []);
  t.same(second.tightened, []);
  t.same(snapshot(allFiles(paths)), before);
});

t.test('backend certificate is a localhost server certificate from the dev CA', async (t) => {
  const ca = new X509Certificate(load(paths.ca).certPem);
  const backend = new X509Certificate(load(paths.backend).certPem);
  t.ok(backend.verify(ca.publicKey), 'signed by the dev CA');
  t.ok(backend.checkIssued(ca));
  t.equal(backend.checkHost('localhost'), 'localhost');
  t.equal(backend.checkIP('127.0.0.1'), '127.0.0.1');
  t.equal(backend.checkIP('::1'), '::1');
  t.equal(backend.ca, false);
  t.same(backend.keyUsage, [SERVER_AUTH_OID]);
  t.equal(ca.ca, true);
  t.ok(Date.parse(backend.validTo) - Date.now() > 365 * DAY_MS, 'valid for more than a year');
  t.not(backend.serialNumber, new X509Certificate(load(paths.adminServer).certPem).serialNumber);
});

t.test('admin client certificate comes from the admin CA only', async (t) => {
  const adminCa = new X509Certificate(load(paths.adminCa).certPem);
  const devCa = new X509Certificate(load(paths.ca).certPem);
  const client = new X509Certificate(load(paths.adminClient).certPem);
  t.match(client.subject, /^CN=admin$/m);
  t.same(client.keyUsage, [CLIENT_AUTH_OID]);
  t.ok(client.verify(adminCa.publicKey), 'signed by the admin CA');
  t.notOk(client.verify(devCa.publicKey), 'not signed by the dev CA');
  t.notOk(client.checkIssued(devCa));
});

t.test('repairs only what is broken', async (t) => {
  const repairDir = t.testdir();
  const initial = makeDevPki(repairDir).paths;
  const adminFiles = [initial.adminCa, initial.adminServer, initial.adminClient].flatMap((p) => [p.keyPath, p.certPath]);
  const adminBefore = snapshot(adminFiles);

  chmodSync(initial.backend.keyPath, 0o644);
  const tightened = makeDevPki(repairDir);
  t.same(tightened.tightened, [initial.backend.keyPath]);
  t.same(tightened.written, []);
  t.equal(statSync(initial.backend.keyPath).mode & 0o777, 0o600);

  // A new dev CA cannot vouch for the old backend certificate, so both are replaced.
  rmSync(initial.ca.keyPath);
  const replaced = makeDevPki(repairDir);
  t.same(replaced.written, [initial.ca.keyPath, initial.ca.certPath, initial.backend.keyPath, initial.backend.certPath]);
  t.same(snapshot(adminFiles), adminBefore, 'admin PKI untouched');

  // 825-day leaves expire long before the 10-year CAs.
  const later = makeDevPki(repairDir, { now: new Date(Date.now() + 900 * DAY_MS) });
  t.same(later.written, [
    initial.backend.keyPath,
    initial.backend.certPath,
    initial.adminServer.keyPath,
    initial.adminServer.certPath,
    initial.adminClient.keyPath,
    initial.adminClient.certPath,
  ]);
});

t.test('issueCertificate rejects misuse', async (t) => {
  const ca = load(paths.ca);
  t.throws(() => issueCertificate({ ca, commonName: 'x', usage: 'peer' as 'server' }), TypeError);
  t.throws(() => issueCertificate({ ca, commonName: '', usage: 'client' }), TypeError);
  t.throws(() => issueCertificate({ ca, commonName: 'x', usage: 'server', altNames: { ip: ['localhost'] } }), TypeError);
  const notBefore = new Date();
  t.throws(() => issueCertificate({ ca, commonName: 'x', usage: 'client', notBefore, notAfter: notBefore }), TypeError);
  const mismatched = { keyPem: load(paths.adminCa).keyPem, certPem: ca.certPem };
  t.throws(() => issueCertificate({ ca: mismatched, commonName: 'x', usage: 'client' }), TypeError);
});

interface Outcome {
  statusCode?: number;
  body?: string;
  errorCode?: string;
}

function request(port: number, client?: KeyAndCert): Promise<Outcome> {
  return new Promise((resolve) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: '/',
        agent: false,
        ca: load(paths.adminCa).certPem,
        ...(client ? { cert: client.certPem, key: client.keyPem } : {}),
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ ...(res.statusCode ? { statusCode: res.statusCode } : {}), body }));
      },
    );
    req.on('error', (error: NodeJS.ErrnoException) => resolve({ errorCode: error.code ?? error.message }));
    req.end();
  });
}

async function listen(t: Test, rejectUnauthorized: boolean): Promise<{ port: number; handled: () => number }> {
  const adminServer = load(paths.adminServer);
  let handledCount = 0;
  const server = https.createServer(
    {
      key: adminServer.keyPem,
      cert: adminServer.certPem,
      ca: load(paths.adminCa).certPem,
      requestCert: true,
      rejectUnauthorized,
    },
    (req, res) => {
      handledCount += 1;
      const socket = req.socket as TLSSocket;
      // The lenient server says why a certificate was not accepted.
      res.end(socket.authorized ? 'authorized' : String(socket.authorizationError));
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { port: (server.address() as AddressInfo).port, handled: () => handledCount };
}

t.test('admin API mutual TLS', async (t) => {
  const strict = await listen(t, true);
  const lenient = await listen(t, false);
  const now = Date.now();
  const expiredClient = issueCertificate({
    ca: load(paths.adminCa),
    commonName: 'admin',
    usage: 'client',
    notBefore: new Date(now - 2 * DAY_MS),
    notAfter: new Date(now - DAY_MS),
  });
  const foreignClient = issueCertificate({ ca: load(paths.ca), commonName: 'admin', usage: 'client' });

  t.test('admin client certificate is accepted', async (t) => {
    t.same(await request(strict.port, load(paths.adminClient)), { statusCode: 200, body: 'authorized' });
  });

  t.test('no client certificate fails the handshake', async (t) => {
    const handledBefore = strict.handled();
    const outcome = await request(strict.port);
    t.equal(outcome.statusCode, undefined);
    t.ok(outcome.errorCode, `refused: ${outcome.errorCode}`);
    t.equal(strict.handled(), handledBefore, 'no request reached the handler');
  });

  t.test('an expired client certificate is refused', async (t) => {
    t.ok(Date.parse(new X509Certificate(expiredClient.certPem).validTo) < now, 'validTo is in the past');
    const handledBefore = strict.handled();
    const outcome = await request(strict.port, expiredClient);
    t.equal(outcome.statusCode, undefined);
    t.ok(outcome.errorCode, `refused: ${outcome.errorCode}`);
    t.equal(strict.handled(), handledBefore, 'no request reached the handler');
    t.same(await request(lenient.port, expiredClient), { statusCode: 200, body: 'CERT_HAS_EXPIRED' });
  });

  t.test('a client certificate from the dev CA is refused', async (t) => {
    const handledBefore = strict.handled();
    const outcome = await request(strict.port, foreignClient);
    t.equal(outcome.statusCode, undefined);
    t.equal(strict.handled(), handledBefore, 'no request reached the handler');
    t.same(await request(lenient.port, foreignClient), {
      statusCode: 200,
      body: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    });
  });
});

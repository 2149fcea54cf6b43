import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { connect } from 'node:tls';
import { join } from 'node:path';
import type { Test } from 'tap';
import { makeDevPki, type DevPkiPaths, type KeyAndCert } from '../../certs/pki.ts';

/** What a TLS client presents: the CA it trusts, and optionally its own certificate and key. */
export interface ClientTls {
  ca: string;
  cert?: string;
  key?: string;
}

export interface AdminPki {
  paths: DevPkiPaths;
  /** Harness config keys that turn the admin API (and the separate JWKS listener) on. */
  config: { adminPort: number; adminCert: string; adminKey: string; adminCa: string; jwksPort: number };
  /** The admin client certificate made by the dev PKI. */
  client: ClientTls;
  /** Trusts the server, presents no certificate. */
  anonymous: ClientTls;
  /** The admin CA's key and certificate, to issue more client certificates (expired ones, say). */
  adminCa: KeyAndCert;
}

/** Runs the dev PKI (as `make certs` does) into a temporary directory, removed after the test. */
export async function makeAdminPki(t: Test): Promise<AdminPki> {
  const dir = await mkdtemp(join(tmpdir(), 'gw-pki-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const { paths } = makeDevPki(dir);
  const ca = await readFile(paths.adminCa.certPath, 'utf8');
  return {
    paths,
    config: {
      adminPort: 0, jwksPort: 0,
      adminCert: paths.adminServer.certPath, adminKey: paths.adminServer.keyPath, adminCa: paths.adminCa.certPath,
    },
    client: { ca, cert: await readFile(paths.adminClient.certPath, 'utf8'), key: await readFile(paths.adminClient.keyPath, 'utf8') },
    anonymous: { ca },
    adminCa: { certPem: ca, keyPem: await readFile(paths.adminCa.keyPath, 'utf8') },
  };
}

export interface AdminResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json(): unknown;
}

export interface AdminRequestOptions {
  tls: ClientTls;
  /** Sent as JSON. */
  body?: unknown;
  /** Sent as is (malformed JSON, say). */
  rawBody?: string;
}

/** One HTTPS request on a fresh connection (no agent, no session reuse) to the admin API on loopback. */
export function adminRequest(port: number, method: string, path: string, options: AdminRequestOptions): Promise<AdminResponse> {
  const payload = options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1', port, method, path, agent: false, servername: 'localhost', ...options.tls,
      headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) as unknown });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * A bare TLS 1.2 handshake (in TLS 1.2 the server's verdict on a client certificate comes before
 * the client sees the handshake complete, so a refusal is visible here). Resolves with whether it
 * completed, and the error code when not.
 */
export function tls12Handshake(port: number, tls: ClientTls): Promise<{ completed: boolean; code?: string }> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', maxVersion: 'TLSv1.2', ...tls }, () => {
      socket.end();
      resolve({ completed: true });
    });
    socket.on('error', (err: NodeJS.ErrnoException) => resolve({ completed: false, code: err.code ?? err.message }));
  });
}

/** Every object key anywhere in a JSON value: a private JWK member (`d`) must never appear. */
export function allKeys(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(allKeys);
  if (value !== null && typeof value === 'object') {
    return Object.entries(value).flatMap(([key, child]) => [key, ...allKeys(child)]);
  }
  return [];
}

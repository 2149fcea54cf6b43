import { readFileSync } from 'node:fs';
import { createServer, type Server, type ServerOptions } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { z } from 'zod';
import { parseDevicePublicKey, type Keystore } from '../auth/index.ts';
import { AdminError, type AdminErrorCode } from '../errors.ts';
import { cut, type Logger } from '../log/index.ts';
import type { Store } from '../store/index.ts';
import { NEW_DEVICE_BODY, NEW_KEY_BODY, OSCORE_BODY, ROTATE_BODY } from './admin-bodies.ts';
import { MethodNotAllowedError, renderAdminError, type AdminReply } from './admin-errors.ts';
import { parseAdmin } from './admin-fields.ts';
import type { FleetKeys } from './fleet-keys.ts';
import type { Metrics } from './metrics.ts';
import {
  addDeviceKey, listDeviceKeys, listDevices, provisionDevices, removeDevice, removeDeviceKey, revokeDevice, revokeToken,
  setDeviceDisabled, setDeviceOscore,
} from './provision.ts';
import { ADMIN_LIMITS, guardServer, readBody, timeoutOptions, type AdminLimits } from './server-limits.ts';

export interface AdminServerOptions {
  host: string;
  port: number;
  certFile: string;
  keyFile: string;
  /** CA whose client certificates may use the API (mutual TLS). */
  caFile: string;
  /** Optional second listener serving only the JWKS, without client certificates, for backends. */
  jwksPort: number | undefined;
  keystore: Keystore;
  /** Rotation and retirement that reach the whole fleet through the store. */
  fleetKeys: FleetKeys;
  store: Store;
  metrics: Metrics;
  logger: Logger;
  health: () => Promise<{ ok: boolean; [key: string]: unknown }>;
  /** Access token lifetime and leeway: a revoked jti is kept this long. */
  tokenTtlSec: number;
  leewaySec: number;
  /** Largest request body read; a larger one is answered 413 and the connection closed. */
  bodyLimitBytes?: number;
  /** Time a client has to send its request headers. */
  headersTimeoutMs?: number;
  /** Time a client has to send its whole request, body included. */
  requestTimeoutMs?: number;
  /** How long an idle keep-alive connection stays open between requests. */
  keepAliveTimeoutMs?: number;
  /** Time a client has to complete the TLS handshake. */
  handshakeTimeoutMs?: number;
  /** Open connections per listener; more are closed at once. */
  maxConnections?: number;
}

/** The request's body, read as JSON (none: `{}`) and checked against the route's schema. */
type BodyReader = <Schema extends z.ZodType>(schema: Schema) => Promise<z.output<Schema>>;
type Route = (match: RegExpExecArray, body: BodyReader) => Promise<AdminReply>;

/**
 * The admin API: HTTPS on loopback with mutual TLS. Clients without a certificate signed by the
 * admin CA are refused in the TLS handshake, before any request is read.
 */
export async function buildAdminServer(options: AdminServerOptions) {
  const { keystore, store, metrics, logger } = options;
  const tls = { cert: readFileSync(options.certFile), key: readFileSync(options.keyFile) };
  const jwks = async (): Promise<AdminReply> => ({ status: 200, body: keystore.jwks() });

  const routes: [string, RegExp, Route][] = [
    ['GET', /^\/\.well-known\/jwks\.json$/, jwks],
    ['GET', /^\/healthz$/, async () => {
      const health = await options.health();
      return { status: health.ok ? 200 : 503, body: health };
    }],
    ['GET', /^\/metrics$/, async () => ({ status: 200, text: await metrics.text(), contentType: metrics.contentType })],
    // The fleet's keys, as `gateway keys list` shows them: which gateway holds each.
    ['GET', /^\/keys$/, async () => ({ status: 200, body: (await options.fleetKeys.list()).map(({ publicJwk: _omit, ...meta }) => meta) })],
    ['POST', /^\/keys\/rotate$/, async (_m, body) => {
      const { alg } = await body(ROTATE_BODY);
      const { publicJwk: _omit, ...created } = await options.fleetKeys.rotate(alg);
      return { status: 201, body: created };
    }],
    ['POST', /^\/keys\/([^/]+)\/retire$/, async (m) => {
      await options.fleetKeys.retire(pathParam(m[1]!, 'GW_ERR_ADMIN_UNKNOWN_KEY'));
      return { status: 204 };
    }],
    ['GET', /^\/devices$/, async () => ({ status: 200, body: await listDevices(store) })],
    ['POST', /^\/devices$/, async (_m, body) => {
      const input = await body(NEW_DEVICE_BODY);
      const key = input.publicKey === undefined ? undefined : await parseDevicePublicKey(input.publicKey, expiry(input.expires));
      const [device] = await provisionDevices(store, [input.id], input.scopes, {
        tokenFormat: input.tokenFormat,
        ...(key === undefined ? {} : { keys: () => [key] }),
        ...(key !== undefined || input.oscore === true ? { secret: input.secret === true } : {}),
        ...(input.oscore === true ? { oscore: true, security: input.security } : input.security !== undefined ? { security: input.security } : {}),
      });
      return { status: 201, body: device };
    }],
    // The context is in the answer once, as a new device's secret is: never in a listing.
    ['POST', /^\/devices\/([^/]+)\/oscore$/, async (m, body) => {
      const input = await body(OSCORE_BODY);
      const { made, rotated, security } = await setDeviceOscore(store, deviceParam(m), input);
      return made === undefined
        ? { status: 200, body: { device: deviceParam(m), security: security ?? 'any' } }
        : { status: 201, body: { ...made, rotated, security: security ?? 'any' } };
    }],
    ['GET', /^\/devices\/([^/]+)\/keys$/, async (m) => ({ status: 200, body: await listDeviceKeys(store, deviceParam(m)) })],
    ['POST', /^\/devices\/([^/]+)\/keys$/, async (m, body) => {
      const input = await body(NEW_KEY_BODY);
      return { status: 201, body: await addDeviceKey(store, deviceParam(m), await parseDevicePublicKey(input.publicKey, expiry(input.expires))) };
    }],
    ['DELETE', /^\/devices\/([^/]+)\/keys\/([^/]+)$/, async (m) => {
      await removeDeviceKey(store, deviceParam(m), pathParam(m[2]!, 'GW_ERR_ADMIN_UNKNOWN_KEY'));
      return { status: 204 };
    }],
    ['POST', /^\/devices\/([^/]+)\/revoke$/, async (m) => {
      await revokeDevice(store, deviceParam(m));
      metrics.revocations.inc({ kind: 'device' });
      return { status: 204 };
    }],
    ['POST', /^\/devices\/([^/]+)\/(disable|enable)$/, async (m) => {
      await setDeviceDisabled(store, deviceParam(m), m[2] === 'disable');
      if (m[2] === 'disable') metrics.revocations.inc({ kind: 'disabled' });
      return { status: 204 };
    }],
    // Not counted here: the gateway counts kind "token" when the store's change feed brings it
    // back, as it does for the CLI's, so counting it here too would count it twice.
    ['POST', /^\/tokens\/([^/]+)\/revoke$/, async (m) => {
      const lifeSec = options.tokenTtlSec + options.leewaySec;
      await revokeToken(store, pathParam(m[1]!, 'GW_ERR_ADMIN_BAD_JTI'), Math.floor(Date.now() / 1000) + lifeSec + 1);
      return { status: 204 };
    }],
    ['DELETE', /^\/devices\/([^/]+)$/, async (m) => {
      await removeDevice(store, pathParam(m[1]!, 'GW_ERR_ADMIN_BAD_DEVICE_ID'));
      return { status: 204 };
    }],
  ];

  const limits = Object.fromEntries((Object.keys(ADMIN_LIMITS) as (keyof AdminLimits)[])
    .map((name) => [name, options[name] ?? ADMIN_LIMITS[name]])) as AdminLimits;

  const answer = async (req: IncomingMessage, path: string, allowed: typeof routes): Promise<AdminReply> => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limits.bodyLimitBytes) {
      throw new AdminError('GW_ERR_ADMIN_BODY_TOO_LARGE', `request body of ${declared} bytes; the limit is ${limits.bodyLimitBytes}`);
    }
    const candidates = allowed.filter(([, pattern]) => pattern.test(path));
    const route = candidates.find(([method]) => method === req.method);
    if (route === undefined) {
      if (candidates.length === 0) throw new AdminError('GW_ERR_ADMIN_NOT_FOUND', 'no admin API resource at this path');
      throw new MethodNotAllowedError(req.method, candidates.map(([method]) => method));
    }
    return route[2](route[1].exec(path)!, async (schema) => parseAdmin(schema, (await readJson(req, limits.bodyLimitBytes)) ?? {}));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, allowed: typeof routes): Promise<void> => {
    // Read before any await: a body reader that stops early may destroy the request, and
    // req.socket is null from then on (reading it then once took the process down).
    const client = clientName(req);
    const path = (req.url ?? '/').split('?')[0]!;
    let reply: AdminReply | undefined;
    try {
      reply = await answer(req, path, allowed);
    } catch (err) {
      reply = renderAdminError(err, logger);
    }
    logger.info({ admin: true, method: cut(req.method), path: cut(path), status: reply?.status, client }, 'admin request');
    if (reply !== undefined) send(req, res, reply);
  };
  // The last guard: whatever a request does, the process keeps running.
  const serve = (allowed: typeof routes) => (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res, allowed).catch((err: unknown) => {
      logger.error({ err }, 'admin request failed after its answer was chosen');
      const internal = renderAdminError(new AdminError('GW_ERR_ADMIN_INTERNAL', 'internal error'), logger);
      if (!res.headersSent && internal !== undefined) send(req, res, internal);
      else res.destroy();
    });
  };

  const serverOptions: ServerOptions = { ...tls, ...timeoutOptions(limits) };
  const admin: Server = createServer({ ...serverOptions, ca: readFileSync(options.caFile), requestCert: true, rejectUnauthorized: true },
    serve(routes));
  const servers: Server[] = [admin];
  let jwksServer: Server | undefined;
  if (options.jwksPort !== undefined) {
    jwksServer = createServer(serverOptions, serve(routes.slice(0, 1)));
    servers.push(jwksServer);
  }
  for (const server of servers) guardServer(server, limits, logger);
  await listen(admin, options.port, options.host);
  if (jwksServer !== undefined) await listen(jwksServer, options.jwksPort!, options.host);
  return {
    address: () => admin.address() as AddressInfo,
    jwksAddress: () => jwksServer?.address() as AddressInfo | undefined,
    close: () => Promise.all(servers.map((s) => new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    }))).then(() => undefined),
  };
}

export type AdminServer = Awaited<ReturnType<typeof buildAdminServer>>;

/** A malformed percent-escape is the client's mistake, answered like any bad id. */
const deviceParam = (m: RegExpExecArray): string => pathParam(m[1]!, 'GW_ERR_ADMIN_BAD_DEVICE_ID');

/** `expires` of a request body, for parseDevicePublicKey. */
const expiry = (expiresAt: string | undefined): { expiresAt?: string } => (expiresAt === undefined ? {} : { expiresAt });

function pathParam(raw: string, code: AdminErrorCode): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new AdminError(code, `malformed path parameter ${JSON.stringify(raw)}`);
  }
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.off('error', reject); resolve(); });
  });
}

function send(req: IncomingMessage, res: ServerResponse, reply: AdminReply): void {
  // A body the client is still sending is not read: answering closes the connection instead.
  if (!req.complete && declaresBody(req)) res.setHeader('connection', 'close');
  for (const [name, value] of Object.entries(reply.headers ?? {})) res.setHeader(name, value);
  if (reply.text !== undefined) res.writeHead(reply.status, { 'content-type': reply.contentType ?? 'text/plain' }).end(reply.text);
  else if (reply.body === undefined) res.writeHead(reply.status).end();
  else res.writeHead(reply.status, { 'content-type': 'application/json' }).end(JSON.stringify(reply.body));
}

const declaresBody = (req: IncomingMessage): boolean =>
  req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;

/** The client certificate's CN, or undefined (the JWKS port asks for none; the socket may be gone). */
function clientName(req: IncomingMessage): string | undefined {
  const socket = req.socket as TLSSocket | null;
  const cn = socket?.getPeerCertificate?.()?.subject?.CN;
  return typeof cn === 'string' ? cut(cn) : undefined;
}

/** The body as JSON (undefined when empty), read only up to the limit. */
async function readJson(req: IncomingMessage, limitBytes: number): Promise<unknown> {
  const text = (await readBody(req, limitBytes)).toString('utf8').trim();
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    // Not JSON.parse's message: it quotes the body back.
    throw new AdminError('GW_ERR_ADMIN_BAD_JSON', 'the body is not valid JSON');
  }
}

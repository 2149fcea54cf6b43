import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server } from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { AdminError } from '../errors.ts';
import { cut, type Logger } from '../log/index.ts';
import { ClientGoneError } from './admin-errors.ts';

/**
 * Limits that keep a slow, large or broken request from holding the admin API (or the process):
 * a slowloris client is cut off after the headers timeout, a trickled body after the request
 * timeout, an idle connection after the keep-alive timeout. Node's defaults (no body limit,
 * 300 s per request, 120 s per handshake, checked every 30 s) are far too generous here.
 */
export const ADMIN_LIMITS = {
  bodyLimitBytes: 64 * 1024,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5_000,
  handshakeTimeoutMs: 10_000,
  maxConnections: 64,
} as const;

export type AdminLimits = { [name in keyof typeof ADMIN_LIMITS]: number };

/** node's HTTP timeouts and the TLS handshake timeout, for createServer. */
export function timeoutOptions(limits: AdminLimits) {
  return {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: Math.max(limits.requestTimeoutMs, limits.headersTimeoutMs),
    // Node checks both timeouts only this often (30 s by default).
    connectionsCheckingInterval: Math.max(10, Math.min(1000, Math.floor(limits.headersTimeoutMs / 4))),
    handshakeTimeout: limits.handshakeTimeoutMs,
  };
}

/** Timeouts, a connection cap, and a handler for every error a client can cause below HTTP. */
export function guardServer(server: Server, limits: AdminLimits, logger: Logger): void {
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.maxConnections = limits.maxConnections;
  // Before the handshake completes: no client certificate, a foreign CA, a scanner, a timeout.
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
    logger.warn({ admin: true, code: err.code, reason: cut(err.message), peer: socket.remoteAddress }, 'admin TLS handshake refused');
    socket.destroy();
  });
  // Below HTTP: malformed requests, oversized headers, the headers and request timeouts, resets.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    logger.info({ admin: true, code: err.code, reason: cut(err.message), peer: socket.remoteAddress }, 'admin connection closed');
    const answer = CLIENT_ERROR_ANSWERS[err.code ?? ''] ?? (err.code === 'ECONNRESET' ? undefined : CLIENT_ERROR_ANSWERS.default);
    // As node's own handler: answer only when no response has started on this connection.
    const inFlight = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (answer !== undefined && socket.writable && (inFlight == null || !inFlight.headersSent)) socket.write(answer);
    socket.destroy();
  });
  // After listening, an error (EMFILE on accept, say) is logged; without a listener it would end the process.
  server.on('listening', () => server.on('error', (err) => logger.error({ err }, 'admin server error')));
}

const CLIENT_ERROR_ANSWERS: Record<string, string> = {
  ERR_HTTP_REQUEST_TIMEOUT: 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n',
  HPE_HEADER_OVERFLOW: 'HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n',
  default: 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n',
};

/**
 * Reads with listeners rather than `for await`: leaving that loop early destroys the request and
 * its socket, and the 413 could not be sent (a 100 KB POST once took the process down that way).
 * Over the limit, reading stops (GW_ERR_ADMIN_BODY_TOO_LARGE); the answer closes the connection.
 */
export function readBody(req: IncomingMessage, limitBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = () => {
      req.off('data', onData).off('end', onEnd).off('error', onGone).off('close', onGone);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limitBytes) {
        chunks.push(chunk);
        return;
      }
      stop();
      req.pause();
      reject(new AdminError('GW_ERR_ADMIN_BODY_TOO_LARGE', `request body over the limit of ${limitBytes} bytes`));
    };
    const onEnd = () => {
      stop();
      resolve(Buffer.concat(chunks));
    };
    const onGone = (err?: Error) => {
      stop();
      reject(new ClientGoneError('the client went away while sending its body', { cause: err }));
    };
    req.on('data', onData).on('end', onEnd).on('error', onGone).on('close', onGone);
  });
}

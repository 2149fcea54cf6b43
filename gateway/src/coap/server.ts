import { createSocket, type Socket } from 'node:dgram';
import { randomUUID } from 'node:crypto';
import { isIPv6 } from 'node:net';
import { createServer, type IncomingMessage, type OutgoingMessage } from 'coap';
import { BridgeError } from '../errors.ts';
import type { Logger } from '../log/index.ts';
import { ExchangeTable } from './exchange-table.ts';
import { parseRequest, requestSizeBytes } from './parse-request.ts';
import { renderError } from './render-error.ts';
import type { CoapResponse, RequestContext, RequestHandler } from './types.ts';

// Stored answers are kept for EXCHANGE_LIFETIME; with up to 1 MB from a backend each, the
// entry count alone would not bound memory.
const EXCHANGE_TABLE_MAX_BYTES = 32 * 1024 * 1024;

export interface CoapServerOptions {
  host: string;
  port: number;
  piggybackReplyMs: number;
  exchangeLifetimeSec: number;
  maxExchanges: number;
  udpRecvBufferBytes: number;
  responseCacheBytes: number;
  handler: RequestHandler;
  logger: Logger;
  nowMs: () => number;
  /** Called once per answered request (metrics). */
  onResponse?: (context: RequestContext, code: string, latencyMs: number) => void;
}

export interface CoapServer {
  address(): { address: string; port: number; family: string };
  close(): Promise<void>;
  /** Requests handed to the handler and not answered yet (graceful shutdown waits for them). */
  inFlight(): number;
}

/**
 * The transport layer: node-coap parses and answers datagrams (piggybacked or separate, RFC 7252
 * section 5.2), the exchange table keeps retransmissions away from the handler, and each request
 * gets one log line.
 */
export async function buildCoapServer(options: CoapServerOptions): Promise<CoapServer> {
  const { handler, logger, nowMs } = options;
  // A deep receive queue rides out event-loop pauses (GC) instead of dropping datagrams,
  // which a device would only retransmit 2-3 s later (the kernel caps it at rmem_max).
  const socket: Socket = createSocket({ type: isIPv6(options.host) ? 'udp6' : 'udp4', recvBufferSize: options.udpRecvBufferBytes });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(options.port, options.host, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  const exchanges = new ExchangeTable({
    lifetimeMs: options.exchangeLifetimeSec * 1000,
    maxEntries: options.maxExchanges,
    maxBytes: EXCHANGE_TABLE_MAX_BYTES,
    nowMs,
  });
  // node-coap keeps every answer (and a 200 s timer holding its whole exchange) in a cache
  // bounded only by answer bytes: gigabytes under load. Our exchange table already answers
  // retransmissions, so its cache only has to keep separate responses retransmitting: bound it.
  const server = createServer({ piggybackReplyMs: options.piggybackReplyMs, cacheSize: options.responseCacheBytes });
  let inFlight = 0;
  let closing = false;
  let closed: Promise<void> | undefined;
  const idleWaiters: (() => void)[] = [];

  const onRequest = (message: IncomingMessage, res: OutgoingMessage): void => {
    const key = `${message.rsinfo.address}:${message.rsinfo.port}/${message._packet.messageId}`;
    const existing = exchanges.begin(key);
    if (existing?.state === 'done') {
      writeResponse(res, existing.response);
      return;
    }
    // In flight: leave `res` unanswered. node-coap acknowledges it with an empty ACK after
    // piggybackReplyMs, which stops the retransmissions; the separate response follows.
    if (existing?.state === 'pending') return;

    const startedMs = performance.now();
    const context: RequestContext = { requestId: randomUUID() };
    inFlight += 1;
    const answering = closing ? Promise.resolve(shuttingDown(message, context)) : answer(message, context);
    void answering.then((response) => {
      exchanges.complete(key, response);
      writeResponse(res, response);
      const latencyMs = Math.round((performance.now() - startedMs) * 100) / 100;
      options.onResponse?.(context, response.code, latencyMs);
      logger.info({
        reqId: context.requestId, deviceId: context.deviceId, route: context.route, method: message.method,
        path: message.url, peer: `${message.rsinfo.address}:${message.rsinfo.port}`, code: response.code,
        backendStatus: context.backendStatus, err: context.errorCode, reason: context.errorReason, latencyMs,
      }, 'coap request');
    }).catch((err: unknown) => {
      logger.error({ err, reqId: context.requestId }, 'answering a request failed');
    }).finally(() => {
      inFlight -= 1;
      if (inFlight === 0) for (const wake of idleWaiters.splice(0)) wake();
    });
  };

  // While closing, new requests get 5.03 with a short Max-Age instead of reaching the backend.
  const shuttingDown = (message: IncomingMessage, context: RequestContext): CoapResponse =>
    renderError(new BridgeError('GW_ERR_BACKEND_UNAVAILABLE', 'gateway shutting down', { maxAgeSec: 5 }),
      context, requestSizeBytes(message), Math.floor(nowMs() / 1000), logger);

  const answer = async (message: IncomingMessage, context: RequestContext): Promise<CoapResponse> => {
    try {
      return await handler(parseRequest(message), context);
    } catch (err) {
      return renderError(err, context, requestSizeBytes(message), Math.floor(nowMs() / 1000), logger);
    }
  };

  server.on('request', onRequest);
  server.on('error', (err: Error) => logger.error({ err }, 'coap socket error'));
  await new Promise<void>((resolve) => server.listen(socket, () => resolve()));

  return {
    address: () => socket.address(),
    inFlight: () => inFlight,
    close: () => (closed ??= (async () => {
      closing = true;
      if (inFlight > 0) await new Promise<void>((resolve) => { idleWaiters.push(resolve); });
      // The last answers were handed to the socket a moment ago: dgram resolves the address on
      // a later tick and libuv may still queue them. Closing now would drop them.
      for (let turn = 0; turn < 100; turn += 1) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (socket.getSendQueueCount() === 0) break;
      }
      server.close();
      exchanges.clear();
      await new Promise<void>((resolve) => socket.close(() => resolve()));
    })()),
  };
}

function writeResponse(res: OutgoingMessage, response: CoapResponse): void {
  res.code = response.code;
  // node-coap's Observe stream sends statusCode and ignores code: set both, or a refused
  // GET with Observe would reach the device as 2.05.
  res.statusCode = response.code;
  if (response.contentFormat !== undefined) res.setOption('Content-Format', response.contentFormat as never);
  if (response.maxAgeSec !== undefined) res.setOption('Max-Age', response.maxAgeSec as never);
  if (response.size1Bytes !== undefined) res.setOption('Size1', response.size1Bytes as never);
  res.end(response.payload);
}

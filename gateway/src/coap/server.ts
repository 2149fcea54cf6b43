import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { Logger } from '../log/index.ts';
import type { RequestHandler } from '../messages.ts';
import { createEndpoint, type Endpoint, type EndpointObserver } from './endpoint.ts';
import type { TransmissionParameters } from './separate-responses.ts';

export interface CoapServerOptions {
  host: string;
  port: number;
  piggybackReplyMs: number;
  exchangeLifetimeSec: number;
  maxExchanges: number;
  responseCacheBytes: number;
  blockBufferBytes: number;
  blockLifetimeSec: number;
  representationBytes: number;
  udpRecvBufferBytes: number;
  transmission?: TransmissionParameters;
  handler: RequestHandler;
  logger: Logger;
  nowMs: () => number;
  observer?: EndpointObserver;
}

export interface CoapServer {
  address(): { address: string; port: number; family: string };
  close(): Promise<void>;
  /** Requests handed to the handler and not answered yet (graceful shutdown waits for them). */
  inFlight(): number;
  readonly endpoint: Endpoint;
}

/**
 * The endpoint on a UDP socket (RFC 7252 over node:dgram): every datagram in goes to
 * `endpoint.handle`, every datagram out goes back to the address and port it answers.
 */
export async function buildCoapServer(options: CoapServerOptions): Promise<CoapServer> {
  const { logger } = options;
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
  const endpoint = createEndpoint({
    ...options,
    exchangeBytes: options.responseCacheBytes,
    send: (datagram, peer) => socket.send(datagram, peer.port, peer.address),
  });
  socket.on('message', (datagram, rinfo) => endpoint.handle(datagram, { address: rinfo.address, port: rinfo.port }));
  // Without a send callback, dgram reports a failed send (an unreachable peer) here.
  socket.on('error', (err) => logger.warn({ err }, 'coap socket error'));
  let closed: Promise<void> | undefined;

  return {
    endpoint,
    address: () => socket.address(),
    inFlight: () => endpoint.inFlight(),
    close: () => (closed ??= (async () => {
      await endpoint.drain();
      // The last answers were handed to the socket a moment ago: dgram resolves the address on
      // a later tick and libuv may still queue them. Closing now would drop them.
      for (let turn = 0; turn < 100; turn += 1) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (socket.getSendQueueCount() === 0) break;
      }
      endpoint.clear();
      await new Promise<void>((resolve) => socket.close(() => resolve()));
    })()),
  };
}

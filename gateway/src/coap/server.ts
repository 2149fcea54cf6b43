import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { RequestHandler } from '../messages.ts';
import { createAddressLayer } from './address-layer.ts';
import { createBlockWiseLayer } from './block-wise-layer.ts';
import { createDrainLayer } from './drain-layer.ts';
import { stackOf } from './layer.ts';
import { createMessagingLayer, type MessagingEvictedTable, type MessagingObserver, type MessagingOptions } from './messaging-layer.ts';
import { createOscoreLayer, type OscoreLayerOptions } from './oscore-layer.ts';
import type { Peer } from './peer.ts';
import { createRenderError } from './render-error.ts';
import { createRequestLayer } from './request-layer.ts';

export type EvictedTable = MessagingEvictedTable | 'uploads' | 'representations' | 'oscore_sequence_blocks';

/** What the endpoint reports, for metrics; every callback optional. */
export interface EndpointObserver extends Omit<MessagingObserver, 'evicted'> {
  evicted?(table: EvictedTable): void;
  uploadBytes?(bytes: number): void;
  /** An unauthenticated answer larger than its request was held back for an Echo round trip. */
  challenged?(): void;
}

export interface EndpointOptions extends Omit<MessagingOptions, 'up' | 'render' | 'observer'> {
  handler: RequestHandler;
  /** Bytes of Block1 uploads buffered at once, over all devices. */
  blockBufferBytes: number;
  blockLifetimeSec: number;
  representationBytes: number;
  /** The OSCORE layer's contexts, windows and bounds (RFC 8613). */
  oscore: Omit<OscoreLayerOptions, 'render' | 'nowMs' | 'onSequenceBlockEvicted'>;
  observer?: EndpointObserver;
}

export interface Endpoint {
  /** One datagram from a peer. Never throws, whatever the bytes. */
  handle(datagram: Buffer, peer: Peer): void;
  inFlight(): number;
  uploadBytes(): number;
  /** New requests get 5.03 from now on; resolves when every request in flight is answered. */
  drain(): Promise<void>;
  /** Stops retransmissions and forgets every table. */
  clear(): void;
}

/**
 * The gateway's CoAP endpoint (RFC 7252, RFC 7959, RFC 9175), transport-agnostic: datagrams in
 * through `handle`, out through `send`. The stack, bottom to top (layer.ts says how layers meet):
 *
 *   messaging       decode, ping/RST, dedup, piggybacked or separate answers, retransmission, log
 *   oscore          verify and decrypt each protected request, protect every answer coming down
 *   drain           5.03 once the gateway is stopping
 *   address check   Echo before an unauthenticated answer larger than its request
 *   (observe)       next: relations and their notifications (`Answer.later`)
 *   block-wise      Block1 reassembly, Block2 from stored answers
 *   request         the pipeline: the gateway's own resources and the bridged routes
 */
export function createEndpoint(options: EndpointOptions): Endpoint {
  const { handler, logger, nowMs, observer = {} } = options;
  const render = createRenderError(logger, nowMs);
  const drain = createDrainLayer();
  const blockWise = createBlockWiseLayer({
    admit: (request, source, declaredBytes) => handler.admit(request, source, declaredBytes),
    render, nowMs, blockBufferBytes: options.blockBufferBytes, blockLifetimeSec: options.blockLifetimeSec,
    representationBytes: options.representationBytes,
    onEvicted: (table) => observer.evicted?.(table), onUploadBytes: (bytes) => observer.uploadBytes?.(bytes),
  });
  const messaging = createMessagingLayer({
    ...options,
    render,
    up: stackOf([
      createOscoreLayer({ ...options.oscore, render, nowMs, onSequenceBlockEvicted: () => observer.evicted?.('oscore_sequence_blocks') }),
      drain,
      createAddressLayer({ nowMs, onChallenged: () => observer.challenged?.() }),
      blockWise,
      createRequestLayer({ handler, render }),
    ], render),
  });
  return {
    handle: messaging.handle,
    inFlight: messaging.inFlight,
    uploadBytes: blockWise.uploadBytes,
    async drain() {
      drain.stop();
      await messaging.idle();
    },
    clear() {
      messaging.clear();
      blockWise.clear();
    },
  };
}

export interface CoapServerOptions extends Omit<EndpointOptions, 'send' | 'exchangeBytes'> {
  host: string;
  port: number;
  responseCacheBytes: number;
  udpRecvBufferBytes: number;
}

export interface CoapServer {
  address(): { address: string; port: number; family: string };
  close(): Promise<void>;
  /** Requests handed to the handler and not answered yet (graceful shutdown waits for them). */
  inFlight(): number;
  readonly endpoint: Endpoint;
}

/**
 * The endpoint on a UDP socket (RFC 7252 over node:dgram; DTLS would wrap here): every datagram
 * in goes to `endpoint.handle`, every datagram out goes back to the address and port it answers.
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

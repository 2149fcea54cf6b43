import { randomUUID } from 'node:crypto';
import type { ParsedPacket } from 'coap-packet';
import { BridgeError, RequestError } from '../errors.ts';
import { cut, type Logger } from '../log/index.ts';
import type { RequestContext, RequestHandler } from '../messages.ts';
import { createAddressValidator } from './address-validation.ts';
import { Block1Assembler } from './block1-assembler.ts';
import { blockwiseAnswer, receiveBlock1, storedBlock, type BlockWiseParts } from './block-wise.ts';
import { decodeDatagram, type DropReason } from './decode-datagram.ts';
import { encodeEmpty, encodeReply, type MessageType, type Reply } from './encode-reply.ts';
import { ExchangeTable } from './exchange-table.ts';
import { peerKey, type Peer } from './peer.ts';
import { readRequest, type TransportRequest } from './read-request.ts';
import { renderError } from './render-error.ts';
import { RepresentationStore } from './representation-store.ts';
import { SeparateResponses, type TransmissionParameters } from './separate-responses.ts';

/** RFC 7252 section 4.8.2: NON_LIFETIME, how long a NON's message ID stays a duplicate. */
const NON_LIFETIME_MS = 145_000;
/** A reason is ours, with attacker-chosen parts already cut where it was made (log/cut.ts). */
const REASON_CHARS = 240;

export type EvictedTable = 'exchanges' | 'exchanges_unauthenticated' | 'uploads' | 'representations' | 'separate_responses';

/** What the endpoint reports, for metrics; every callback optional. */
export interface EndpointObserver {
  dropped?(reason: DropReason): void;
  retransmitted?(): void;
  resetReceived?(): void;
  evicted?(table: EvictedTable): void;
  uploadBytes?(bytes: number): void;
  /** An unauthenticated answer larger than its request was held back for an Echo round trip. */
  challenged?(): void;
  answered?(context: RequestContext, code: string, latencyMs: number): void;
}

export interface EndpointOptions {
  handler: RequestHandler;
  /** Sends one datagram; the endpoint only ever answers the peer a datagram came from. */
  send: (datagram: Buffer, peer: Peer) => void;
  logger: Logger;
  nowMs: () => number;
  piggybackReplyMs: number;
  exchangeLifetimeSec: number;
  maxExchanges: number;
  exchangeBytes: number;
  blockBufferBytes: number;
  blockLifetimeSec: number;
  representationBytes: number;
  transmission?: TransmissionParameters;
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
 * The gateway's CoAP endpoint (RFC 7252, RFC 7959), transport-agnostic: datagrams in through
 * `handle`, out through `send`, so DTLS or OSCORE can sit in front of it. Layers, in order:
 * message classification -> deduplication -> block-wise -> the request handler -> reliability.
 */
export function createEndpoint(options: EndpointOptions): Endpoint {
  const { handler, send, logger, nowMs, observer = {} } = options;
  const exchangeLifetimeMs = options.exchangeLifetimeSec * 1000;
  const exchanges = new ExchangeTable({
    maxEntries: options.maxExchanges, maxBytes: options.exchangeBytes, nowMs,
    onEvict: (which) => observer.evicted?.(which === 'unauthenticated' ? 'exchanges_unauthenticated' : 'exchanges'),
  });
  const blockLifetimeMs = options.blockLifetimeSec * 1000;
  const uploads = new Block1Assembler({
    maxBytes: options.blockBufferBytes, maxEntries: 10_000, lifetimeMs: blockLifetimeMs, nowMs,
    onEvict: () => observer.evicted?.('uploads'), onBytesChanged: (bytes) => observer.uploadBytes?.(bytes),
  });
  const representations = new RepresentationStore({
    maxBytes: options.representationBytes, maxEntries: 10_000, lifetimeMs: blockLifetimeMs, nowMs,
    onEvict: () => observer.evicted?.('representations'),
  });
  const separate = new SeparateResponses({
    send, maxOutstanding: options.maxExchanges, parameters: options.transmission,
    onRetransmit: () => observer.retransmitted?.(), onGiveUp: (why) => why === 'evicted' && observer.evicted?.('separate_responses'),
  });
  const blockParts: BlockWiseParts = { handler, uploads, representations };
  const addresses = createAddressValidator(nowMs);
  let nextMessageId = Math.floor(Math.random() * 0x10000);
  const newMessageId = () => (nextMessageId = (nextMessageId + 1) & 0xffff);
  let inFlight = 0;
  let draining = false;
  const idleWaiters: (() => void)[] = [];

  // The last resort: whatever went wrong, the datagram is dropped and counted, the process lives.
  const guard = (err: unknown) => {
    observer.dropped?.('internal');
    logger.error({ err }, 'coap endpoint: datagram dropped after an internal error');
  };

  const handle = (datagram: Buffer, peer: Peer): void => {
    try {
      const message = decodeDatagram(datagram);
      switch (message.kind) {
        case 'request':
          // Answers echo the token: the budget an error answer must stay within is the rest of the request.
          onRequest(message.packet, peer, datagram.length - message.packet.token.length);
          return;
        case 'ping': // RFC 7252 section 4.3: an Empty CON elicits an RST ("CoAP ping").
          send(encodeEmpty('reset', message.messageId), peer);
          return;
        case 'reject':
          observer.dropped?.(message.reason);
          send(encodeEmpty('reset', message.messageId), peer);
          return;
        case 'drop':
          observer.dropped?.(message.reason);
          return;
        case 'ack':
          if (!separate.settle(`${peerKey(peer)}/${message.messageId}`)) observer.dropped?.('stray_ack');
          return;
        case 'reset':
          observer.resetReceived?.();
          if (!separate.settle(`${peerKey(peer)}/${message.messageId}`)) observer.dropped?.('stray_reset');
          return;
      }
    } catch (err) {
      guard(err);
    }
  };

  const onRequest = (packet: ParsedPacket, peer: Peer, sizeBytes: number): void => {
    const endpointKey = peerKey(peer);
    const exchangeKey = `${endpointKey}/${packet.messageId}`;
    const { confirmable } = packet;
    const existing = exchanges.begin(exchangeKey, confirmable ? exchangeLifetimeMs : NON_LIFETIME_MS);
    if (existing !== undefined) {
      // A retransmission: the stored reply (or the empty ACK of a separate response); nothing
      // while the piggyback window is open; a duplicate NON is ignored (RFC 7252 section 4.5).
      if (existing.reply !== undefined) send(existing.reply, peer);
      else if (!confirmable) observer.dropped?.('duplicate_non');
      return;
    }
    const startedMs = performance.now();
    const context: RequestContext = { requestId: randomUUID() };
    let separated = false;
    let piggyback: NodeJS.Timeout | undefined;
    if (confirmable) {
      piggyback = setTimeout(() => {
        // RFC 7252 section 5.2.2: acknowledge now, answer later in a CON of our own.
        separated = true;
        const ack = encodeEmpty('ack', packet.messageId);
        exchanges.setReply(exchangeKey, ack);
        send(ack, peer);
      }, options.piggybackReplyMs);
      piggyback.unref();
    }
    inFlight += 1;
    let transport: TransportRequest | undefined;
    const answering = (async (): Promise<Reply> => {
      try {
        transport = readRequest(packet, peer);
        context.addressProved = addresses.verify(peer.address, transport.echo);
        if (draining) throw new BridgeError('GW_ERR_BUSY', 'gateway shutting down', { maxAgeSec: 5 });
        return await respond(transport, endpointKey, context);
      } catch (err) {
        return { response: renderError(err, context, sizeBytes, Math.floor(nowMs() / 1000), logger) };
      }
    })();
    void answering.then((answer) => {
      clearTimeout(piggyback);
      // A separate answer to a request nobody authenticated goes once, as NON: retransmitting it
      // to a source that never ACKs would multiply what a forged address draws.
      const type: MessageType = !confirmable ? 'non' : !separated ? 'ack' : context.authenticated === true ? 'con' : 'non';
      const messageId = type === 'ack' ? packet.messageId : newMessageId();
      let reply = answer;
      let datagram = encode(reply, type, messageId, packet.token, context, sizeBytes);
      // RFC 7252 section 11.3, RFC 9175 section 2.4: an answer larger than its request goes only to
      // a device that authenticated or proved its address; the others get 4.01 with an Echo value
      // to repeat, so a forged source address never makes the gateway a reflector.
      if ((datagram.length > sizeBytes + packet.token.length || context.needsProvedAddress === true) && context.authenticated !== true
        && context.addressProved !== true) {
        observer.challenged?.();
        context.errorCode = 'GW_ERR_AUTH_ADDRESS_UNVERIFIED';
        context.errorReason = context.needsProvedAddress === true ? 'a nonce, to an unverified address'
          : `${datagram.length}-byte answer to an unverified address`;
        reply = { response: { code: '4.01' }, echo: addresses.challenge(peer.address) };
        datagram = encodeReply(reply, type, messageId, packet.token);
        if (datagram.length > sizeBytes + packet.token.length) datagram = encodeReply({ response: reply.response }, type, messageId, packet.token);
      }
      exchanges.complete(exchangeKey, type === 'ack' ? datagram : undefined, context.authenticated === true);
      if (type === 'con') separate.send(`${endpointKey}/${messageId}`, peer, datagram);
      else send(datagram, peer);
      const latencyMs = Math.round((performance.now() - startedMs) * 100) / 100;
      observer.answered?.(context, reply.response.code, latencyMs);
      logger.info({
        reqId: context.requestId, deviceId: context.deviceId, route: context.route,
        method: transport?.request.method ?? packet.code, path: cut(transport?.request.path),
        peer: endpointKey, code: reply.response.code, backendStatus: context.backendStatus,
        err: context.errorCode, reason: cut(context.errorReason, REASON_CHARS), latencyMs,
      }, 'coap request');
    }).catch(guard).finally(() => {
      inFlight -= 1;
      if (inFlight === 0) for (const wake of idleWaiters.splice(0)) wake();
    });
  };

  const respond = async (tr: TransportRequest, endpointKey: string, context: RequestContext): Promise<Reply> => {
    // Block-wise state is per endpoint and request (RFC 7959 section 2.5, RFC 9175 section 3.4).
    const blockKey = () => `${endpointKey} ${tr.blockKey}`;
    const stored = storedBlock(blockParts, tr, blockKey);
    if (stored !== undefined) {
      // Only answers to authenticated requests are stored, and served only for the same
      // Access-Token. A stored login answer has none: its later blocks go to proven addresses only.
      if (tr.request.accessToken !== undefined) context.authenticated = true;
      return stored;
    }
    // RFC 7959 section 2.4: a later block of an answer that is gone; fetching it again is only
    // safe for GET and FETCH, which do not change the backend.
    if ((tr.block2?.num ?? 0) > 0 && tr.block1 === undefined && tr.request.method !== 'GET' && tr.request.method !== 'FETCH') {
      throw new RequestError('GW_ERR_REQUEST_INCOMPLETE', `Block2 ${tr.block2!.num} of a ${tr.request.method} answer no longer kept`);
    }
    let request = tr.request;
    let block1;
    if (tr.block1 !== undefined) {
      const outcome = await receiveBlock1(blockParts, tr, blockKey, context);
      if (outcome.kind === 'continue') return { response: { code: '2.31' }, block1: outcome.block1 };
      ({ request, block1 } = outcome);
    }
    const response = await handler.handle(request, context);
    const reply = blockwiseAnswer(blockParts, tr, context.authenticated === true ? blockKey : undefined, response);
    if (block1 !== undefined) reply.block1 = block1;
    return reply;
  };

  // An answer that cannot fit one message (the backend's Location options, say) becomes a bare 5.02.
  const encode = (reply: Reply, type: MessageType, messageId: number, token: Buffer, context: RequestContext, sizeBytes: number) => {
    try {
      return encodeReply(reply, type, messageId, token);
    } catch (err) {
      const error = new BridgeError('GW_ERR_BACKEND_BAD_RESPONSE', `answer does not fit one message: ${(err as Error).message}`);
      const response = renderError(error, context, sizeBytes, Math.floor(nowMs() / 1000), logger);
      return encodeReply({ response: { code: response.code } }, type, messageId, token);
    }
  };

  return {
    handle,
    inFlight: () => inFlight,
    uploadBytes: () => uploads.bytes,
    async drain() {
      draining = true;
      if (inFlight > 0) await new Promise<void>((resolve) => { idleWaiters.push(resolve); });
    },
    clear() {
      separate.clear();
      exchanges.clear();
      uploads.clear();
      representations.clear();
    },
  };
}

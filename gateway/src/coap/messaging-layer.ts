import { randomUUID } from 'node:crypto';
import type { ParsedPacket } from 'coap-packet';
import { BridgeError } from '../errors.ts';
import { cut, type Logger } from '../log/index.ts';
import type { RequestSource } from '../messages.ts';
import { decodeDatagram, type DropReason } from './decode-datagram.ts';
import { encodeEmpty, encodeReply, type MessageType, type Reply } from './encode-reply.ts';
import { ExchangeTable } from './exchange-table.ts';
import type { Answer, ErrorNote, Exchange, LaterAnswer, Next, RenderError } from './layer.ts';
import { peerKey, type Peer } from './peer.ts';
import { METHODS, readRequest } from './read-request.ts';
import { noteOf } from './render-error.ts';
import { Retransmissions, type Settled, type TransmissionParameters } from './retransmissions.ts';

/** RFC 7252 section 4.8.2: NON_LIFETIME, how long a NON's message ID stays a duplicate. */
const NON_LIFETIME_MS = 145_000;
/** A reason is ours, with attacker-chosen parts already cut where it was made (log/cut.ts). */
const REASON_CHARS = 240;
/** No layer below the pipeline proves anything about a request yet (an OSCORE layer will). */
const UNPROVED: RequestSource = { addressProved: false };

export type MessagingEvictedTable = 'exchanges' | 'exchanges_unauthenticated' | 'separate_responses';

/** What the messaging layer reports, for metrics; every callback optional. */
export interface MessagingObserver {
  dropped?(reason: DropReason): void;
  retransmitted?(): void;
  resetReceived?(): void;
  evicted?(table: MessagingEvictedTable): void;
  answered?(route: string | undefined, code: string, latencyMs: number): void;
}

export interface MessagingOptions {
  /** The layers above, as one function (layer.ts `stackOf`). */
  up: Next;
  /** Sends one datagram; only ever to the peer a datagram came from. */
  send: (datagram: Buffer, peer: Peer) => void;
  /** Renders what goes wrong before a request reaches the layers above (an option it cannot take). */
  render: RenderError;
  logger: Logger;
  nowMs: () => number;
  piggybackReplyMs: number;
  exchangeLifetimeSec: number;
  maxExchanges: number;
  exchangeBytes: number;
  transmission?: TransmissionParameters;
  observer?: MessagingObserver;
}

export interface Messaging {
  /** One datagram from a peer. Never throws, whatever the bytes. */
  handle(datagram: Buffer, peer: Peer): void;
  /** Requests handed up and not answered yet. */
  inFlight(): number;
  /** Resolves once no request is in flight. */
  idle(): Promise<void>;
  /** Stops retransmissions and later answers, and forgets every exchange. */
  clear(): void;
}

/**
 * The bottom of the stack (RFC 7252 sections 4 and 5): decodes each datagram (ping, RST, stray
 * ACKs, format errors answered or dropped), deduplicates requests by endpoint and message ID,
 * reads the request's options and hands it up; then sends its answer piggybacked in the ACK,
 * or, once `piggybackReplyMs` has passed, as a separate response after an empty ACK (CON and
 * retransmitted when the request was authenticated, else NON once), and writes its log line.
 * Later answers (`Answer.later`) go in messages of their own.
 */
export function createMessagingLayer(options: MessagingOptions): Messaging {
  const { up, send, render, logger, observer = {} } = options;
  const exchangeLifetimeMs = options.exchangeLifetimeSec * 1000;
  const exchanges = new ExchangeTable({
    maxEntries: options.maxExchanges, maxBytes: options.exchangeBytes, nowMs: options.nowMs,
    onEvict: (which) => observer.evicted?.(which === 'unauthenticated' ? 'exchanges_unauthenticated' : 'exchanges'),
  });
  const confirmables = new Retransmissions({
    send, maxOutstanding: options.maxExchanges, parameters: options.transmission,
    onRetransmit: () => observer.retransmitted?.(), onGiveUp: (why) => why === 'evicted' && observer.evicted?.('separate_responses'),
  });
  const laterStreams = new Set<AsyncIterator<LaterAnswer>>();
  let nextMessageId = Math.floor(Math.random() * 0x10000);
  const newMessageId = () => (nextMessageId = (nextMessageId + 1) & 0xffff);
  let inFlight = 0;
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
          if (!confirmables.settle(`${peerKey(peer)}/${message.messageId}`, 'ack')) observer.dropped?.('stray_ack');
          return;
        case 'reset':
          observer.resetReceived?.();
          if (!confirmables.settle(`${peerKey(peer)}/${message.messageId}`, 'reset')) observer.dropped?.('stray_reset');
          return;
      }
    } catch (err) {
      guard(err);
    }
  };

  const onRequest = (packet: ParsedPacket, peer: Peer, budgetBytes: number): void => {
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
    const exchange: Exchange = { requestId: randomUUID(), peer, endpointKey, budgetBytes };
    let separated = false;
    let piggyback: NodeJS.Timeout | undefined;
    if (confirmable) {
      piggyback = setTimeout(() => {
        // RFC 7252 section 5.2.2: acknowledge now, answer later in a message of our own.
        separated = true;
        const ack = encodeEmpty('ack', packet.messageId);
        exchanges.setReply(exchangeKey, ack);
        send(ack, peer);
      }, options.piggybackReplyMs);
      piggyback.unref();
    }
    inFlight += 1;
    let path: string | undefined;
    const answering = (async (): Promise<Answer> => {
      let read;
      try {
        read = readRequest(packet, peer, exchange.requestId);
      } catch (err) {
        return render(err, exchange);
      }
      path = read.request.path;
      return up({ exchange, request: read.request, options: read.options, source: UNPROVED });
    })();
    void answering.then((answer) => {
      clearTimeout(piggyback);
      // A separate answer to a request nobody authenticated goes once, as NON: retransmitting it
      // to a source that never ACKs would multiply what a forged address draws.
      const authenticated = answer.principal !== undefined;
      const type: MessageType = !confirmable ? 'non' : !separated ? 'ack' : authenticated ? 'con' : 'non';
      const messageId = type === 'ack' ? packet.messageId : newMessageId();
      const sent = encode(answer.reply, type, messageId, packet.token);
      exchanges.complete(exchangeKey, type === 'ack' ? sent.datagram : undefined, authenticated);
      if (type === 'con') confirmables.send(`${endpointKey}/${messageId}`, peer, sent.datagram);
      else send(sent.datagram, peer);
      const latencyMs = Math.round((performance.now() - startedMs) * 100) / 100;
      observer.answered?.(answer.log.route, sent.code, latencyMs);
      const error = sent.error ?? answer.error;
      logger.info({
        reqId: exchange.requestId, deviceId: answer.log.deviceId, route: answer.log.route,
        method: answer.log.method ?? METHODS.get(packet.code) ?? packet.code, path: cut(answer.log.path ?? path), peer: endpointKey,
        protection: answer.log.protection, code: sent.code,
        backendStatus: answer.log.backendStatus, err: error?.code, reason: cut(error?.reason, REASON_CHARS), latencyMs,
      }, 'coap request');
      if (answer.later !== undefined) void deliverLater(answer.later, peer, endpointKey, packet.token).catch(guard);
    }).catch(guard).finally(() => {
      inFlight -= 1;
      if (inFlight === 0) for (const wake of idleWaiters.splice(0)) wake();
    });
  };

  /**
   * Each later answer in a message of its own, with a new message ID: a CON one waits for its
   * ACK before the next is taken; a reset or a CON never acknowledged ends them (RFC 7641
   * sections 3.6 and 4.5: the device is no longer interested).
   */
  const deliverLater = async (later: AsyncIterable<LaterAnswer>, peer: Peer, endpointKey: string, token: Buffer): Promise<void> => {
    const stream = later[Symbol.asyncIterator]();
    laterStreams.add(stream);
    try {
      for (let next = await stream.next(); next.done !== true; next = await stream.next()) {
        const { reply, confirmable } = next.value;
        const messageId = newMessageId();
        const { datagram } = encode(reply, confirmable ? 'con' : 'non', messageId, token);
        if (!confirmable) {
          send(datagram, peer);
          continue;
        }
        const how = await new Promise<Settled>((settled) => confirmables.send(`${endpointKey}/${messageId}`, peer, datagram, settled));
        if (how !== 'ack') break;
      }
    } finally {
      laterStreams.delete(stream);
      await stream.return?.();
    }
  };

  // An answer that cannot fit one message (the backend's Location options, say) becomes a bare 5.02.
  const encode = (reply: Reply, type: MessageType, messageId: number, token: Buffer)
    : { datagram: Buffer; code: string; error?: ErrorNote } => {
    try {
      return { datagram: encodeReply(reply, type, messageId, token), code: reply.response.code };
    } catch (err) {
      const error = noteOf(new BridgeError('GW_ERR_BACKEND_BAD_RESPONSE', `answer does not fit one message: ${(err as Error).message}`));
      return { datagram: encodeReply({ response: { code: '5.02' } }, type, messageId, token), code: '5.02', error };
    }
  };

  return {
    handle,
    inFlight: () => inFlight,
    async idle() {
      if (inFlight > 0) await new Promise<void>((resolve) => { idleWaiters.push(resolve); });
    },
    clear() {
      confirmables.clear();
      for (const stream of laterStreams) void stream.return?.();
      laterStreams.clear();
      exchanges.clear();
    },
  };
}

import type { CoapRequest, Learned, Principal, RequestSource } from '../messages.ts';
import type { Reply } from './encode-reply.ts';
import type { Peer } from './peer.ts';
import type { RequestOptions } from './read-request.ts';

// The endpoint is a stack of layers (server.ts composes it), in the manner of Californium's
// CoapUdpStack: a request goes up from the messaging layer at the bottom to the request layer at
// the top; each layer passes it on (changed or not) or answers it itself, and every answer comes
// back down through each layer below the one that made it, which may change it in turn. So a
// layer that must touch every answer (OSCORE protects them all) sits below those that make them.

/** What stays the same for one exchange from its first datagram to its last answer. */
export interface Exchange {
  readonly requestId: string;
  readonly peer: Peer;
  /** `address:port`: with the message ID, the exchange's key; with the request, block-wise state's. */
  readonly endpointKey: string;
  /**
   * The request's size less its token. An answer echoes the token, so an answer within this is no
   * larger than its request (RFC 7252 section 11.3): errors always stay within it.
   */
  readonly budgetBytes: number;
}

/** One request on its way up, with what the layers below found out about it. */
export interface Inbound {
  readonly exchange: Exchange;
  readonly request: CoapRequest;
  /** The options the layers themselves act on (Block1, Block2, Size1, Size2, Echo, Request-Tag). */
  readonly options: RequestOptions;
  readonly source: RequestSource;
}

/** Why a request failed, for its log line only: never sent to the device. */
export interface ErrorNote {
  code: string;
  reason: string;
}

/** What a request's log line says besides what the messaging layer knows itself. */
export interface AnswerLog {
  deviceId?: string;
  route?: string;
  backendStatus?: number;
  /** The protected request's inner method and path (the outer ones are always POST or FETCH and '/'). */
  method?: string;
  path?: string;
  /** 'oscore' when the request verified under a security context. */
  protection?: 'oscore';
}

/** One answer on its way down, and what the layers below it need to know to send it. */
export interface Answer {
  readonly reply: Reply;
  /** Who the request proved to be: its answer may be larger than the request, and go as CON when late. */
  readonly principal?: Principal;
  /** Whatever its size, the answer goes only to an address that proved it receives there (RFC 9175). */
  readonly provedAddressOnly?: boolean;
  readonly log: AnswerLog;
  /** Set when the answer is a rendered error: why, for the log only. */
  readonly error?: ErrorNote;
  /**
   * Further answers to the same request, as they come (Observe notifications, RFC 7641), each
   * sent by the messaging layer in a message of its own. The messaging layer ends the iteration
   * (`return()`) when the device rejects one or never acknowledges a confirmable one.
   */
  readonly later?: AsyncIterable<LaterAnswer>;
}

export interface LaterAnswer {
  readonly reply: Reply;
  /** Sent as CON and retransmitted until acknowledged; otherwise as NON. */
  readonly confirmable: boolean;
}

export type Next = (inbound: Inbound) => Promise<Answer>;

/** One layer of the stack. */
export interface Layer {
  /**
   * A request going up: answer it, or pass it (changed or not) to `next` and return its answer
   * (changed or not). A GatewayError thrown here is rendered into this layer's answer.
   */
  handle(inbound: Inbound, next: Next): Promise<Answer>;
}

/** Turns an error into an answer, keeping what the layer that failed had learned. */
export type RenderError = (err: unknown, exchange: Exchange, learned?: Learned) => Answer;

/**
 * The layers, bottom first, as one function the messaging layer calls: each layer's `next` is
 * the one above it, and whatever a layer throws is rendered right there, so the layers below it
 * see an answer like any other (an OSCORE layer protects a rendered error as it protects the rest).
 */
export function stackOf(layers: readonly Layer[], render: RenderError): Next {
  let up: Next = (inbound) => Promise.resolve(render(new TypeError('no layer answered the request'), inbound.exchange));
  for (let i = layers.length - 1; i >= 0; i -= 1) {
    const layer = layers[i]!;
    const above = up;
    up = (inbound) => layer.handle(inbound, above).catch((err: unknown) => render(err, inbound.exchange));
  }
  return up;
}

/** What a log line takes from what a request taught: the principal's device, else the one it named. */
export function answerLog(learned: Learned): AnswerLog {
  return { deviceId: learned.principal?.deviceId ?? learned.deviceId, route: learned.route, backendStatus: learned.backendStatus };
}

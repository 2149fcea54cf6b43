import { randomBytes } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { generate, parse, type ParsedPacket } from 'coap-packet';
import type { Test } from 'tap';
import { DeviceOscoreContext } from '../../device-sim/src/oscore-context.ts';
import { OscoreRefusal } from '../../device-sim/src/oscore-messages.ts';
import { optionNumber } from '../../gateway/src/coap/options.ts';
import { ContentFormat, ErrorKey, WireError, encodeCbor } from '../../gateway/src/wire/index.ts';
import {
  OscoreError, emptyWindow, slideWindow, deriveContext, protectResponse, readOscoreOption, unprotectRequest,
  type CoapMessage, type CoapOption, type SecurityContext,
  type ReplayWindow,
} from '../../gateway/src/wire/oscore/index.ts';

// A small OSCORE server of the gateway's kind, for the simulator's client tests while no gateway
// is needed: the core's server-side functions (unprotectRequest, protectResponse, the replay
// window) over node:dgram, one context per device kid, section 8.2 errors in clear with the
// gateway's wire codes, Echo recovery (RFC 8613 Appendix B.1.2) when asked for. Not a CoAP
// server beyond what those tests need: piggybacked answers, deduplication by peer and Message ID.

export const ECHO = 252;
export const BLOCK1 = 27;
export const BLOCK2 = 23;
export const CBOR_FORMAT = Buffer.of(ContentFormat.cbor);

export interface OscoreKeys {
  device: DeviceOscoreContext;
  /** The same context from the gateway's side (its Sender ID the empty one). */
  gateway: SecurityContext;
  /** As a devices file has it. */
  hex: { senderId: string; recipientId: string; masterSecret: string; masterSalt: string };
}

/** A fresh context, as `gateway devices add --oscore` makes one: a random 16-byte secret and 8-byte salt. */
export function oscoreKeys(senderId = Buffer.of(0x2a)): OscoreKeys {
  const masterSecret = randomBytes(16);
  const masterSalt = randomBytes(8);
  const hex = { senderId: senderId.toString('hex'), recipientId: '', masterSecret: masterSecret.toString('hex'), masterSalt: masterSalt.toString('hex') };
  return {
    device: DeviceOscoreContext.fromHex(hex),
    gateway: deriveContext({ masterSecret, masterSalt, senderId: Buffer.alloc(0), recipientId: senderId }),
    hex,
  };
}

/** One request as the server saw it: the datagram, its outer part, and what it decrypted to. */
export interface Seen {
  datagram: Buffer;
  packet: ParsedPacket;
  kid?: string;
  sequenceNumber?: number;
  inner?: CoapMessage;
}

export type Answer = (inner: CoapMessage, seen: Seen) => CoapMessage;

export interface ServerPlan {
  /** Holds no replay window at first (a restart): a verified request without our Echo gets a protected 4.01 with one, under our own Partial IV. */
  echoFirst?: boolean;
  /** What a verified request is answered (default 2.01, a CBOR body with the sequence number). */
  answer?: Answer;
  /** How the answer is sent: protected (default), a success in clear, protected with one ciphertext bit flipped, or not at all the first time (the client retransmits). */
  send?: 'protected' | 'clear-success' | 'tampered' | 'drop-first';
  /** Protect the answers under this context instead (another device's keys): they cannot verify. */
  answerWith?: SecurityContext;
}

export const opt = (number: number, value: Buffer): CoapOption => ({ number, value });
const errorBody = (wireError: number) => encodeCbor(new Map([[ErrorKey.code, wireError], [ErrorKey.serverTimeSec, Math.floor(Date.now() / 1000)]]));

interface Held {
  context: SecurityContext;
  window: ReplayWindow;
  windowKnown: boolean;
  echo: Buffer;
  ownSequence: number;
}

/** The server for these device contexts (the gateway's side of each), on 127.0.0.1, closed after the test. */
export async function oscoreServer(t: Test, contexts: readonly SecurityContext[], plan: ServerPlan = {}) {
  const socket: Socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  t.teardown(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  const held = new Map<string, Held>(contexts.map((context) => [context.recipientId.toString('hex'), {
    context, window: emptyWindow(), windowKnown: plan.echoFirst !== true, echo: randomBytes(8), ownSequence: 0,
  }]));
  /** Every request datagram, retransmissions included; `seen` has each exchange once (deduplicated by peer and Message ID, RFC 7252 section 4.5). */
  const datagrams: Buffer[] = [];
  const seen: Seen[] = [];
  const answered = new Map<string, Buffer>();
  let dropped = false;

  const reply = (packet: ParsedPacket, peer: RemoteInfo, code: string, options: readonly CoapOption[], payload: Buffer) => {
    const datagram = generate({
      code, ack: true, messageId: packet.messageId, token: packet.token, payload,
      options: options.map((o) => ({ name: String(o.number) as never, value: o.value })),
    });
    answered.set(`${peer.address}:${peer.port}/${packet.messageId}`, datagram);
    socket.send(datagram, peer.port, peer.address);
  };
  const refuse = (packet: ParsedPacket, peer: RemoteInfo, refusal: { code: string; wireError: number }) =>
    reply(packet, peer, refusal.code, [opt(12, CBOR_FORMAT)], errorBody(refusal.wireError));

  socket.on('message', (datagram, peer) => {
    const packet = parse(datagram);
    if (packet.ack || packet.reset || packet.code === '0.00') return;
    datagrams.push(Buffer.from(datagram));
    const again = answered.get(`${peer.address}:${peer.port}/${packet.messageId}`);
    if (again !== undefined) return void socket.send(again, peer.port, peer.address);
    if (plan.send === 'drop-first' && !dropped) {
      dropped = true;
      return;
    }
    const entry: Seen = { datagram: Buffer.from(datagram), packet };
    seen.push(entry);
    const value = packet.options.find((o) => optionNumber(o.name) === 9)?.value;
    if (value === undefined) return refuse(packet, peer, { code: '4.01', wireError: WireError.oscoreRequired });
    let option;
    try {
      option = readOscoreOption(value);
    } catch {
      return refuse(packet, peer, OscoreRefusal.malformedOption);
    }
    entry.kid = option.kid?.toString('hex');
    const device = entry.kid === undefined ? undefined : held.get(entry.kid);
    if (device === undefined) return refuse(packet, peer, option.kid === undefined ? OscoreRefusal.malformedOption : OscoreRefusal.unknownContext);
    let verified;
    try {
      verified = unprotectRequest(device.context, option, packet.payload);
    } catch (err) {
      if (!(err instanceof OscoreError)) throw err;
      return refuse(packet, peer, err.code === 'malformed_option' ? OscoreRefusal.malformedOption : OscoreRefusal.decryptFailed);
    }
    entry.sequenceNumber = verified.sequenceNumber;
    entry.inner = verified.message;
    const { request: binding, message } = verified;
    const protect = (answer: CoapMessage, own: boolean) =>
      protectResponse(plan.answerWith ?? device.context, binding, answer, own ? { sequenceNumber: device.ownSequence++ } : undefined);
    if (!device.windowKnown) {
      const echo = message.options.find((o) => o.number === ECHO)?.value;
      if (echo === undefined || !echo.equals(device.echo)) {
        const sealed = protect({ code: '4.01', options: [opt(ECHO, device.echo)], payload: Buffer.alloc(0) }, true);
        return reply(packet, peer, sealed.outerCode, sealed.outerOptions, sealed.payload);
      }
      device.windowKnown = true;
    }
    const slid = slideWindow(device.window, verified.sequenceNumber);
    if (slid === undefined) return refuse(packet, peer, OscoreRefusal.replay);
    device.window = slid;
    const answer = (plan.answer ?? ((_inner, s) => ({
      code: '2.01', options: [opt(12, CBOR_FORMAT)], payload: encodeCbor(new Map([['seq', s.sequenceNumber]])),
    })))(message, entry);
    if (plan.send === 'clear-success') return reply(packet, peer, answer.code, answer.options, answer.payload);
    const sealed = protect(answer, false);
    const payload = Buffer.from(sealed.payload);
    if (plan.send === 'tampered') payload[payload.length - 1]! ^= 0x80;
    return reply(packet, peer, sealed.outerCode, sealed.outerOptions, payload);
  });
  return { port: socket.address().port, seen, datagrams };
}

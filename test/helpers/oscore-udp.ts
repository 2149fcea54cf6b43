import { generate, parse, type Option as PacketOption, type ParsedPacket } from 'coap-packet';
import type { Test } from 'tap';
import {
  deriveContext, protectRequest, unprotectResponse, type CoapMessage, type CoapOption, type RequestBinding, type SecurityContext,
} from '../../gateway/src/wire/oscore/index.ts';
import { UdpProbe } from './udp-probe.ts';

// A device's side of OSCORE over a bare UDP socket, for tests that must send exact bytes (a
// replayed datagram, a flipped bit, a malformed option) to the real gateway: the core
// (gateway/src/wire/oscore, checked against RFC 8613's vectors) protects, coap-packet frames.

/** A context as `gateway devices add --oscore` prints it (the device's side, hex). */
export interface OscoreCredentials {
  senderId: string;
  recipientId: string;
  masterSecret: string;
  masterSalt: string;
}

export interface Exchanged {
  /** What the device sent. */
  datagram: Buffer;
  reply: ParsedPacket;
  /** The protected answer opened; undefined for an answer in clear. */
  inner: CoapMessage | undefined;
  binding: RequestBinding;
}

let nextMessageId = 0x4000;

/** The device's security context from what the CLI printed. */
export function deviceContext(credentials: OscoreCredentials): SecurityContext {
  return deriveContext({
    masterSecret: Buffer.from(credentials.masterSecret, 'hex'), masterSalt: Buffer.from(credentials.masterSalt, 'hex'),
    senderId: Buffer.from(credentials.senderId, 'hex'), recipientId: Buffer.from(credentials.recipientId, 'hex'),
  });
}

/** An inner request: method code, Uri-Path segments, more options, payload. */
export function innerRequest(code: string, path: string, extra: CoapOption[] = [], payload: Buffer = Buffer.alloc(0)): CoapMessage {
  const segments = path.split('/').filter(Boolean).map((segment) => ({ number: 11, value: Buffer.from(segment) }));
  return { code, options: [...segments, ...extra].sort((a, b) => a.number - b.number), payload };
}

export class OscoreUdpDevice {
  readonly probe: UdpProbe;
  readonly context: SecurityContext;
  sequenceNumber: number;

  private constructor(probe: UdpProbe, context: SecurityContext, sequenceNumber: number) {
    this.probe = probe;
    this.context = context;
    this.sequenceNumber = sequenceNumber;
  }

  static async open(t: Test, port: number, credentials: OscoreCredentials, sequenceNumber = 0): Promise<OscoreUdpDevice> {
    return new OscoreUdpDevice(await UdpProbe.open(t, { address: '127.0.0.1', port }), deviceContext(credentials), sequenceNumber);
  }

  /** The protected datagram for `inner` under the next sequence number (or `seq`), not sent. */
  protect(inner: CoapMessage, seq = this.sequenceNumber++): { datagram: Buffer; binding: RequestBinding; messageId: number } {
    const sealed = protectRequest(this.context, seq, inner);
    const messageId = (nextMessageId = (nextMessageId + 1) & 0xffff);
    const datagram = generate({
      code: sealed.outerCode, messageId, token: Buffer.from([messageId >> 8, messageId & 0xff]), confirmable: true,
      options: sealed.outerOptions.map((o): PacketOption => ({ name: String(o.number), value: o.value })), payload: sealed.payload,
    }, 65_535);
    return { datagram, binding: sealed.request, messageId };
  }

  /**
   * Sends a datagram and waits for its answer: piggybacked in the ACK, or after an empty ACK as a
   * separate response with the request's token, which is acknowledged if confirmable (RFC 7252 section 5.2.2).
   */
  async exchange(datagram: Buffer, binding: RequestBinding): Promise<Exchanged> {
    const request = parse(datagram);
    await this.probe.send(datagram);
    let reply = await this.probe.next((p) => p.ack && p.messageId === request.messageId, `the answer to message ${request.messageId}`);
    if (reply.code === '0.00') {
      reply = await this.probe.next((p) => !p.ack && p.code !== '0.00' && p.token.equals(request.token), `the separate answer to message ${request.messageId}`);
      if (reply.confirmable) await this.probe.send(generate({ code: '0.00', messageId: reply.messageId, ack: true, token: Buffer.alloc(0) }));
    }
    const value = reply.options.find((o) => String(o.name) === 'OSCORE' || String(o.name) === '9')?.value;
    const inner = value === undefined ? undefined : unprotectResponse(this.context, binding, value, reply.payload);
    return { datagram, reply, inner, binding };
  }

  /** Protects and sends `inner`, repeating once with the Echo value of a protected 4.01 (Appendix B.1.2). */
  async request(inner: CoapMessage, options: { recover?: boolean } = {}): Promise<Exchanged & { recovered: boolean }> {
    const first = this.protect(inner);
    const answer = await this.exchange(first.datagram, first.binding);
    const echo = answer.inner?.code === '4.01' ? answer.inner.options.find((o) => o.number === 252)?.value : undefined;
    if (echo === undefined || options.recover === false) return { ...answer, recovered: false };
    const repeat = this.protect({ ...inner, options: [...inner.options, { number: 252, value: echo }].sort((a, b) => a.number - b.number) });
    return { ...(await this.exchange(repeat.datagram, repeat.binding)), recovered: true };
  }
}

/** The same datagram under a new message ID, as an attacker who copied it off the air replays it (not a retransmission). */
export function replayed(datagram: Buffer, messageId: number): Buffer {
  const copy = Buffer.from(datagram);
  copy.writeUInt16BE(messageId, 2);
  return copy;
}

/** The datagram with its OSCORE option's kid replaced (a request sent under another device's kid), under a new message ID. */
export function withKid(datagram: Buffer, kid: Buffer, messageId: number): Buffer {
  const packet = parse(datagram);
  const options = packet.options.map((o) => {
    if (String(o.name) !== 'OSCORE') return o;
    const flags = o.value[0]!;
    const pivLength = flags & 0x07;
    return { name: o.name, value: Buffer.concat([o.value.subarray(0, 1 + pivLength), kid]) };
  });
  return generate({ ...packet, messageId, options }, 65_535);
}

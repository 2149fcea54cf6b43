import type { RemoteInfo } from 'node:dgram';
import { HEADER_BYTES, MessageType, writeHeader } from './coap-header.ts';
import { bindEchoSocket, type EchoServer } from './echo-server.ts';

const CODE_EMPTY = 0x00;
const CODE_POST = 0x02;
const CODE_CREATED = 0x41; // 2.01
const CODE_CONTENT = 0x45; // 2.05
const PAYLOAD_MARKER = 0xff;

/**
 * The benchmark's physical floor: a bare `node:dgram` socket that answers each request with the
 * least work that still makes a CoAP response a node-coap client accepts (RFC 7252 section 5.2.1,
 * piggybacked): a copy of the header and token with the type set to ACK (NON stays NON) and the
 * code set to 2.01 for a POST, 2.05 otherwise, then the request's payload. No parsing into objects,
 * no option table, no exchange state: what a request costs Node and the kernel, and nothing else.
 * A CON ping gets RST; anything that is not a version-1 request is dropped.
 */
export async function buildRawEchoServer(host = '127.0.0.1', port = 0): Promise<EchoServer> {
  const socket = await bindEchoSocket(host, port);
  socket.on('message', (msg: Buffer, peer: RemoteInfo) => {
    const answer = echoAnswer(msg);
    if (answer !== undefined) socket.send(answer, peer.port, peer.address);
  });
  return {
    port: socket.address().port,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

/** The answer to one datagram, or undefined to stay silent. */
export function echoAnswer(msg: Buffer): Buffer | undefined {
  if (msg.length < HEADER_BYTES) return undefined;
  const first = msg[0]!;
  const type = (first >> 4) & 0x03;
  const tokenLength = first & 0x0f;
  const code = msg[1]!;
  const messageId = msg.readUInt16BE(2);
  if (first >> 6 !== 1 || tokenLength > 8 || msg.length < HEADER_BYTES + tokenLength) return undefined;
  if (code === CODE_EMPTY) {
    // RFC 7252 section 4.3: a CON ping gets RST; an empty NON, ACK or RST gets nothing.
    return type === MessageType.con ? writeHeader(Buffer.allocUnsafe(HEADER_BYTES), MessageType.rst, 0, CODE_EMPTY, messageId) : undefined;
  }
  // Only requests (class 0) are answered, and only CON or NON.
  if (code >> 5 !== 0 || (type !== MessageType.con && type !== MessageType.non)) return undefined;
  const payloadAt = payloadOffset(msg, HEADER_BYTES + tokenLength);
  if (payloadAt === -1) return undefined;
  const head = HEADER_BYTES + tokenLength;
  const payloadBytes = payloadAt === msg.length ? 0 : msg.length - payloadAt;
  const answer = Buffer.allocUnsafe(head + (payloadBytes > 0 ? 1 + payloadBytes : 0));
  writeHeader(answer, type === MessageType.con ? MessageType.ack : MessageType.non, tokenLength,
    code === CODE_POST ? CODE_CREATED : CODE_CONTENT, messageId);
  msg.copy(answer, HEADER_BYTES, HEADER_BYTES, head);
  if (payloadBytes > 0) {
    answer[head] = PAYLOAD_MARKER;
    msg.copy(answer, head + 1, payloadAt);
  }
  return answer;
}

/**
 * Where the payload starts (after the marker), msg.length when there is none, -1 for a format
 * error. Skips the options by their delta/length nibbles only (RFC 7252 section 3.1).
 */
function payloadOffset(msg: Buffer, from: number): number {
  let at = from;
  while (at < msg.length) {
    const byte = msg[at]!;
    if (byte === PAYLOAD_MARKER) return at + 1 < msg.length ? at + 1 : -1;
    const delta = byte >> 4;
    let length = byte & 0x0f;
    if (delta === 15 || length === 15) return -1;
    at += 1 + (delta === 13 ? 1 : delta === 14 ? 2 : 0);
    if (length === 13) {
      length = msg[at]! + 13;
      at += 1;
    } else if (length === 14) {
      length = (msg[at]! << 8) + msg[at + 1]! + 269;
      at += 2;
    }
    at += length;
  }
  return at === msg.length ? at : -1;
}

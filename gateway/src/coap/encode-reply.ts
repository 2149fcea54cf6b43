import { generate, type Option as PacketOption } from 'coap-packet';
import { clampMaxAge } from '../max-age.ts';
import type { CoapResponse } from '../messages.ts';
import { Option, writeBlock, writeUint, type BlockOption } from './options.ts';

/** RFC 7252 section 4.6: a message should fit 1152 bytes, so it needs no IP fragmentation. */
export const MAX_MESSAGE_BYTES = 1152;

/** A response as the transport sends it: the pipeline's answer plus block-wise options. */
export interface Reply {
  response: CoapResponse;
  block1?: BlockOption;
  block2?: BlockOption;
  size2Bytes?: number;
  /** RFC 9175 section 2.2: the value the device must echo to prove its address. */
  echo?: Buffer;
  /** RFC 8613 section 6.1: the OSCORE option of a protected answer (the rest of it is its payload). */
  oscore?: Buffer;
}

export type MessageType = 'ack' | 'con' | 'non';

const EMPTY = Buffer.alloc(0);

/** A reply's options, each as its number and value, in the order RFC 7252 section 3.1 wants (by number). */
export function replyOptions(reply: Reply): { number: number; value: Buffer }[] {
  const { response } = reply;
  const options: { number: number; value: Buffer }[] = [];
  const add = (number: number, value: Buffer) => options.push({ number, value });
  if (response.etag !== undefined) add(Option.etag, response.etag);
  for (const segment of response.locationPath ?? []) add(Option.locationPath, Buffer.from(segment));
  if (reply.oscore !== undefined) add(Option.oscore, reply.oscore);
  if (response.contentFormat !== undefined) add(Option.contentFormat, writeUint(response.contentFormat));
  // RFC 7252 section 5.10.5: 0-4 bytes, whatever the backend or an error asked for.
  if (response.maxAgeSec !== undefined) add(Option.maxAge, writeUint(clampMaxAge(response.maxAgeSec)));
  for (const pair of response.locationQuery ?? []) add(Option.locationQuery, Buffer.from(pair));
  if (reply.block2 !== undefined) add(Option.block2, writeBlock(reply.block2));
  if (reply.block1 !== undefined) add(Option.block1, writeBlock(reply.block1));
  if (reply.size2Bytes !== undefined) add(Option.size2, writeUint(reply.size2Bytes));
  if (response.size1Bytes !== undefined) add(Option.size1, writeUint(response.size1Bytes));
  if (reply.echo !== undefined) add(Option.echo, reply.echo);
  return options;
}

/**
 * One reply as a datagram. Throws when it cannot fit MAX_MESSAGE_BYTES; the endpoint then sends
 * a small error instead (an answer that cannot be sent must never take the endpoint down).
 */
export function encodeReply(reply: Reply, type: MessageType, messageId: number, token: Buffer): Buffer {
  const options: PacketOption[] = replyOptions(reply).map(({ number, value }) => ({ name: String(number), value }));
  return generate({
    code: reply.response.code, messageId, token, options, payload: reply.response.payload ?? EMPTY,
    ack: type === 'ack', confirmable: type === 'con',
  }, MAX_MESSAGE_BYTES);
}

/** An Empty message: the ACK that promises a separate response, or the RST that rejects (section 4.2). */
export function encodeEmpty(kind: 'ack' | 'reset', messageId: number): Buffer {
  return generate({ code: '0.00', messageId, token: EMPTY, ack: kind === 'ack', reset: kind === 'reset' });
}

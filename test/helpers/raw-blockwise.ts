import type { ParsedPacket } from 'coap-packet';
import { isAnswerTo, rawRequest, type RawCoapClient, type RawRequest } from './bridge-raw-coap.ts';
import { blockValue, uintValue } from './coap-wire.ts';

export interface RawBlock1 {
  path: string[];
  accessToken?: string;
  method?: RawRequest['method'];
  /** Default 50 (JSON), which a cbor-json route passes through as it is. */
  contentFormat?: number;
  num: number;
  more: boolean;
  szx: number;
  payload: Buffer;
  size1?: number;
  messageId: number;
  /** Further options, e.g. Request-Tag (292). */
  extraOptions?: { name: string; value: Buffer }[];
}

/**
 * One block of an upload as its own datagram. The CoAP token is new for every block (derived from
 * the message ID), as libcoap and aiocoap do and RFC 7959 section 2.5 allows: the gateway must
 * reassemble by the request, never by the token.
 */
export function block1Datagram(b: RawBlock1): { datagram: Buffer; token: Buffer } {
  const token = Buffer.from([0xb1, b.messageId >> 8, b.messageId & 0xff]);
  const extraOptions = [{ name: 'Block1', value: blockValue(b.num, b.more, b.szx) }];
  if (b.size1 !== undefined) extraOptions.push({ name: 'Size1', value: uintValue(b.size1) });
  extraOptions.push(...(b.extraOptions ?? []));
  const datagram = rawRequest({
    method: b.method ?? 'POST', path: b.path, accessToken: b.accessToken, messageId: b.messageId, token,
    contentFormat: b.contentFormat ?? 50, payload: b.payload, extraOptions,
  });
  return { datagram, token };
}

/** Sends one block and waits for its answer. */
export async function sendBlock1(client: RawCoapClient, b: RawBlock1): Promise<ParsedPacket> {
  const { datagram, token } = block1Datagram(b);
  await client.send(datagram);
  return client.next(isAnswerTo(token), `answer to block ${b.num} of ${b.path.join('/')}`);
}

export interface RawUpload {
  path: string[];
  accessToken?: string;
  contentFormat?: number;
  body: Buffer;
  szx: number;
  size1?: number;
  /** First message ID; each block takes the next. */
  messageId: number;
}

/** Uploads `body` block by block in order, stopping at the first answer that is not 2.31; returns every answer. */
export async function rawUpload(client: RawCoapClient, u: RawUpload): Promise<ParsedPacket[]> {
  const size = 1 << (u.szx + 4);
  const blocks = Math.max(1, Math.ceil(u.body.length / size));
  const answers: ParsedPacket[] = [];
  for (let num = 0; num < blocks; num += 1) {
    const answer = await sendBlock1(client, {
      path: u.path, accessToken: u.accessToken, contentFormat: u.contentFormat, num, more: num < blocks - 1, szx: u.szx,
      payload: u.body.subarray(num * size, (num + 1) * size), size1: num === 0 ? u.size1 : undefined,
      messageId: (u.messageId + num) & 0xffff,
    });
    answers.push(answer);
    if (answer.code !== '2.31') break;
  }
  return answers;
}

import { createSocket, type Socket } from 'node:dgram';
import { generate, parse, type Packet, type ParsedPacket } from 'coap-packet';
import type { Test } from 'tap';
import { ACCESS_TOKEN_OPTION } from '../../gateway/src/wire/index.ts';
import type { Harness } from './harness.ts';

/** How long a datagram may take before the wait fails the test (a failure guard, never a sync point). */
const WAIT_LIMIT_MS = 5000;

export interface RawRequest {
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Uri-Path segments, one option each, sent as they are (no splitting on '/'). */
  path: string[];
  /** Uri-Query options, one each, sent as they are. */
  query?: string[];
  /** Text (a JWT) or bytes (a CWT), sent as they are. */
  accessToken?: string | Buffer;
  messageId: number;
  token: Buffer;
  confirmable?: boolean;
  payload?: Buffer;
  contentFormat?: number;
  /** Further options, e.g. `[{ name: '65000', value: Buffer.from('x') }]`. */
  extraOptions?: { name: string; value: Buffer }[];
}

/**
 * A device without node-coap: a bare UDP socket that sends exactly the datagrams a test builds
 * (retransmissions with the same message ID, options node-coap cannot send) and sees every
 * datagram the gateway answers with, empty ACKs included.
 */
export class RawCoapClient {
  readonly #socket: Socket;
  readonly #port: number;
  readonly #inbox: ParsedPacket[] = [];
  readonly #waiters: { match: (p: ParsedPacket) => boolean; resolve: (p: ParsedPacket) => void }[] = [];
  /** Every datagram received, in order, parsed. */
  readonly received: ParsedPacket[] = [];
  readonly #sizes = new WeakMap<ParsedPacket, number>();

  private constructor(socket: Socket, port: number) {
    this.#socket = socket;
    this.#port = port;
    socket.on('message', (msg) => {
      const packet = parse(msg);
      this.#sizes.set(packet, msg.length);
      this.received.push(packet);
      const i = this.#waiters.findIndex((w) => w.match(packet));
      if (i === -1) {
        this.#inbox.push(packet);
        return;
      }
      const [waiter] = this.#waiters.splice(i, 1);
      waiter!.resolve(packet);
    });
  }

  static async open(t: Test, gatewayPort: number): Promise<RawCoapClient> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, '127.0.0.1', () => { socket.off('error', reject); resolve(); });
    });
    t.teardown(() => new Promise<void>((resolve) => socket.close(() => resolve())));
    return new RawCoapClient(socket, gatewayPort);
  }

  send(datagram: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#socket.send(datagram, this.#port, '127.0.0.1', (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Resolves with the first datagram (already received and not yet taken, or arriving later) that matches. */
  next(match: (p: ParsedPacket) => boolean, what: string): Promise<ParsedPacket> {
    const i = this.#inbox.findIndex(match);
    if (i !== -1) return Promise.resolve(this.#inbox.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no datagram within ${WAIT_LIMIT_MS} ms: ${what}`)), WAIT_LIMIT_MS);
      timer.unref();
      this.#waiters.push({ match, resolve: (p) => { clearTimeout(timer); resolve(p); } });
    });
  }

  /** The size in bytes of a datagram this client received, as it came off the wire. */
  sizeOf(packet: ParsedPacket): number {
    return this.#sizes.get(packet) ?? Number.NaN;
  }

  /** Datagrams received and not taken by `next`. */
  unclaimed(): readonly ParsedPacket[] {
    return this.#inbox;
  }

  /** RFC 7252 section 5.2.2: the client acknowledges a confirmable separate response. */
  ack(response: ParsedPacket): Promise<void> {
    return this.send(generate({ code: '0.00', messageId: response.messageId, ack: true, token: Buffer.alloc(0) }));
  }
}

/** The datagram of a request, built exactly as given. */
export function rawRequest(r: RawRequest): Buffer {
  const options: Packet['options'] = [];
  for (const segment of r.path) options.push({ name: 'Uri-Path', value: Buffer.from(segment) });
  if (r.contentFormat !== undefined) options.push({ name: 'Content-Format', value: uint(r.contentFormat) });
  for (const pair of r.query ?? []) options.push({ name: 'Uri-Query', value: Buffer.from(pair) });
  for (const option of r.extraOptions ?? []) options.push(option);
  if (r.accessToken !== undefined) options.push({ name: String(ACCESS_TOKEN_OPTION), value: typeof r.accessToken === 'string' ? Buffer.from(r.accessToken) : r.accessToken });
  return generate({
    code: r.method ?? 'GET', messageId: r.messageId, token: r.token, confirmable: r.confirmable ?? true,
    options, payload: r.payload ?? Buffer.alloc(0),
  });
}

/** Option values are minimal unsigned integers (RFC 7252 section 3.2). */
function uint(value: number): Buffer {
  if (value === 0) return Buffer.alloc(0);
  const bytes: number[] = [];
  for (let v = value; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return Buffer.from(bytes);
}

export const isEmptyAck = (messageId: number) => (p: ParsedPacket) => p.ack && p.code === '0.00' && p.messageId === messageId;
export const isAnswerTo = (token: Buffer) => (p: ParsedPacket) => p.code !== '0.00' && p.token.equals(token);

/** Provisions a device, logs it in over CoAP and returns its access token. */
export async function loginToken(h: Harness, id: string, scopes?: string[]): Promise<string> {
  const secret = await h.provision(id, scopes);
  const device = await h.device();
  const { tokens } = await device.login(id, secret);
  if (tokens === undefined) throw new Error(`login of ${id} failed`);
  return tokens.accessToken;
}

/** Reads an option of a parsed datagram as an unsigned integer (Max-Age, Content-Format). */
export function uintOption(p: ParsedPacket, name: string): number | undefined {
  const option = p.options.find((o) => o.name === name);
  if (option === undefined) return undefined;
  let n = 0;
  for (const byte of option.value) n = n * 256 + byte;
  return n;
}

import type { Test } from 'tap';
import { generate, parse, type Option as PacketOption, type ParsedPacket } from 'coap-packet';
import { Decoder } from 'cbor-x';
import { pino } from 'pino';
import { createEndpoint, type EndpointOptions, type EvictedTable } from '../../gateway/src/coap/server.ts';
import type { DropReason } from '../../gateway/src/coap/decode-datagram.ts';
import type { Peer } from '../../gateway/src/coap/peer.ts';
import type { Admitted, CoapRequest, CoapResponse, Handled, Principal, RequestHandler, RequestSource } from '../../gateway/src/messages.ts';
import { conditions } from './condition.ts';

// The endpoint without a socket (aedes-style `handle(datagram, peer)`): datagrams in, datagrams
// out through a recording `send`, a stub RequestHandler (our own interface), an injected clock.
// Datagrams are written and read with coap-packet, the codec. Tests wait for the Nth datagram
// sent (a promise with a failure guard), never for a fixed time.

export const FAST = { ackTimeoutMs: 20, ackRandomFactor: 1, maxRetransmit: 4 };
export const PEER_A: Peer = { address: '192.0.2.10', port: 5683 };
export const PEER_B: Peer = { address: '2001:db8::b', port: 5683 };
export const PEER_A_OTHER_PORT: Peer = { address: '192.0.2.10', port: 5684 };
/** RFC 9175: the Echo option. */
export const ECHO = 252;
const cbor = new Decoder({ mapsAsObjects: false, useRecords: false });

/** Who the stub says sent an authenticated request. */
export const STUB_PRINCIPAL: Principal = { deviceId: 'stub-device', scopes: new Set(['any']), by: 'access-token' };

// ---------------------------------------------------------------------------------------------
// The stub handler: records what reached admit() and handle(), answers what the test says.
// Like the pipeline after a token verifies, it returns a principal for a request that carries an
// Access-Token (unless `authenticated` says otherwise): only such a request's answer may be larger
// than the request (RFC 7252 section 11.3); a tokenless one gets 4.01 with an Echo option instead
// (RFC 9175 section 2.4). admit() grants `maxBodyBytes` to every request; what admitImpl or
// handleImpl throws is returned as the refusal, beside the principal.

export interface Admission { request: CoapRequest; source: RequestSource; declaredBytes: number | undefined; uploadBytesAtAdmit: number }

/** What a handleImpl may return: a response (the stub adds the principal), or a whole result. */
export type StubResult = CoapResponse | Handled;

export class StubHandler implements RequestHandler {
  readonly admitted: Admission[] = [];
  readonly handled: CoapRequest[] = [];
  readonly sources: RequestSource[] = [];
  uploadBytes: () => number = () => 0;
  maxBodyBytes = 16_384;
  authenticated: (request: CoapRequest) => boolean = (request) => request.accessToken !== undefined;
  admitImpl: (request: CoapRequest, declaredBytes: number | undefined) => void = () => {};
  handleImpl: (request: CoapRequest, source: RequestSource) => StubResult | Promise<StubResult> =
    () => ({ code: '2.05', payload: Buffer.from('ok'), contentFormat: 0 });

  async admit(request: CoapRequest, source: RequestSource, declaredBytes: number | undefined): Promise<Admitted> {
    this.admitted.push({ request, source, declaredBytes, uploadBytesAtAdmit: this.uploadBytes() });
    const principal = this.authenticated(request) ? STUB_PRINCIPAL : undefined;
    try {
      this.admitImpl(request, declaredBytes);
    } catch (error) {
      return { error, principal };
    }
    return { maxBodyBytes: this.maxBodyBytes, principal };
  }

  async handle(request: CoapRequest, source: RequestSource): Promise<Handled> {
    this.handled.push(request);
    this.sources.push(source);
    const principal = this.authenticated(request) ? STUB_PRINCIPAL : undefined;
    try {
      const result = await this.handleImpl(request, source);
      return 'response' in result || 'error' in result ? result : { response: result, principal };
    } catch (error) {
      return { error, principal };
    }
  }

  /** Every later handle() waits until the test releases it, in call order. */
  hold(): ((response: CoapResponse) => void)[] {
    const releases: ((response: CoapResponse) => void)[] = [];
    this.handleImpl = () => new Promise<CoapResponse>((resolve) => { releases.push(resolve); });
    return releases;
  }
}

// ---------------------------------------------------------------------------------------------
// The harness: an endpoint, what it sent, what it reported.

export interface Sent { datagram: Buffer; peer: Peer; packet: ParsedPacket }

/** Parses what was sent; a datagram coap-packet cannot parse is recorded as such (tests check that none is). */
export function recorded(datagram: Buffer, peer: Peer): Sent {
  let packet: ParsedPacket;
  try {
    packet = parse(datagram);
  } catch {
    packet = { code: 'unparseable', confirmable: false, reset: false, ack: false, messageId: -1, token: Buffer.alloc(0), options: [], payload: Buffer.alloc(0) };
  }
  return { datagram: Buffer.from(datagram), peer, packet };
}

const NO_OSCORE_CONTEXTS: EndpointOptions['oscore'] = {
  contextOf: async () => undefined,
  windows: { accept: async () => 'unknown', establish: async () => undefined, reserveSequence: async () => 0 },
  maxSequenceBlocks: 16,
};

export function harness(t: Test, overrides: Partial<EndpointOptions> = {}) {
  let now = 1_700_000_000_000;
  const handler = new StubHandler();
  const sent: Sent[] = [];
  const dropped: DropReason[] = [];
  const uploadReports: number[] = [];
  const evicted: EvictedTable[] = [];
  const counts = { retransmitted: 0, resets: 0, challenged: 0 };
  const { notify, until } = conditions();
  const endpoint = createEndpoint({
    handler,
    send: (datagram, peer) => {
      sent.push(recorded(datagram, peer));
      notify();
    },
    logger: pino({ level: 'silent' }),
    nowMs: () => now,
    piggybackReplyMs: 10_000,
    exchangeLifetimeSec: 247,
    maxExchanges: 1000,
    exchangeBytes: 1 << 20,
    blockBufferBytes: 1 << 20,
    blockLifetimeSec: 60,
    representationBytes: 1 << 20,
    // No device has a security context here: OSCORE requests get the layer's refusals (oscore-layer.test.ts covers the rest).
    oscore: NO_OSCORE_CONTEXTS,
    transmission: FAST,
    observer: {
      dropped: (reason) => { dropped.push(reason); },
      retransmitted: () => { counts.retransmitted += 1; },
      resetReceived: () => { counts.resets += 1; },
      challenged: () => { counts.challenged += 1; },
      uploadBytes: (bytes) => { uploadReports.push(bytes); },
      evicted: (table) => { evicted.push(table); },
    },
    ...overrides,
  });
  handler.uploadBytes = () => endpoint.uploadBytes();
  t.teardown(() => endpoint.clear());

  /** Hands one datagram to the endpoint and resolves with the first datagram it then sends to that peer. */
  const ask = async (datagram: Buffer, peer: Peer = PEER_A): Promise<Sent> => {
    const before = sent.length;
    const toPeer = () => sent.slice(before).find((s) => samePeer(s.peer, peer));
    endpoint.handle(datagram, peer);
    await until(() => toPeer() !== undefined, `an answer to ${peer.address}:${peer.port}`);
    return toPeer()!;
  };
  return { endpoint, handler, sent, dropped, uploadReports, evicted, counts, until, ask, advanceMs: (ms: number) => { now += ms; }, nowMs: () => now };
}

export type Harness = ReturnType<typeof harness>;

export const samePeer = (a: Peer, b: Peer) => a.address === b.address && a.port === b.port;

// ---------------------------------------------------------------------------------------------
// Requests and replies, through coap-packet.

let nextMessageId = 100;
let nextToken = 1;

/** A message ID not used before in this test file. */
export const freshMessageId = (): number => (nextMessageId = (nextMessageId + 1) & 0xffff);

export interface RequestSpec {
  code?: string;
  type?: 'con' | 'non';
  messageId?: number;
  token?: string;
  path?: string[];
  accessToken?: string;
  contentFormat?: number;
  payload?: Buffer;
  block1?: [num: number, more: boolean, szx: number];
  block2?: [num: number, more: boolean, szx: number];
  size1?: number;
  size2?: boolean;
  extra?: [number, Buffer][];
}

const uint = (n: number): Buffer => {
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return Buffer.from(bytes);
};
export const readUint = (value: Buffer | undefined): number | undefined =>
  (value === undefined ? undefined : value.reduce((n, byte) => n * 256 + byte, 0));
const blockValue = ([num, more, szx]: [number, boolean, number]) => uint(num * 16 + (more ? 8 : 0) + szx);

export function request(spec: RequestSpec = {}): Buffer {
  const options: PacketOption[] = [];
  const add = (number: number, value: Buffer) => options.push({ name: String(number), value });
  for (const segment of spec.path ?? ['sensors']) add(11, Buffer.from(segment));
  if (spec.contentFormat !== undefined) add(12, uint(spec.contentFormat));
  if (spec.block2 !== undefined) add(23, blockValue(spec.block2));
  if (spec.block1 !== undefined) add(27, blockValue(spec.block1));
  if (spec.size2 === true) add(28, Buffer.alloc(0));
  if (spec.size1 !== undefined) add(60, uint(spec.size1));
  if (spec.accessToken !== undefined) add(65003, Buffer.from(spec.accessToken));
  for (const [number, value] of spec.extra ?? []) add(number, value);
  return generate({
    code: spec.code ?? 'GET',
    messageId: spec.messageId ?? freshMessageId(),
    token: Buffer.from(spec.token ?? (nextToken++).toString(16).padStart(4, '0'), 'hex'),
    confirmable: (spec.type ?? 'con') === 'con',
    options,
    payload: spec.payload ?? Buffer.alloc(0),
  }, 65_535);
}

export const emptyMessage = (kind: 'ack' | 'reset' | 'ping', messageId: number) =>
  generate({ code: '0.00', messageId, ack: kind === 'ack', reset: kind === 'reset', confirmable: kind === 'ping' });

/** An option of a reply, by coap-packet's name. */
export const option = (sent: Sent, name: string): Buffer | undefined => sent.packet.options.find((o) => String(o.name) === name)?.value;
export const block = (sent: Sent, name: 'Block1' | 'Block2') => {
  const n = readUint(option(sent, name));
  return n === undefined ? undefined : { num: Math.floor(n / 16), more: (n & 8) !== 0, szx: n & 7 };
};
export const errorBody = (sent: Sent) => cbor.decode(sent.packet.payload) as Map<number, number>;
export const isEmptyAck = (s: Sent, messageId: number) =>
  s.packet.ack && s.packet.code === '0.00' && s.packet.messageId === messageId && s.datagram.length === 4;

/** A body whose every byte depends on its position, so that a misplaced block shows. */
export const patterned = (size: number) => Buffer.from(Array.from({ length: size }, (_, i) => (i * 7 + (i >> 8)) & 0xff));

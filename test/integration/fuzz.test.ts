import { createSocket, type Socket } from 'node:dgram';
import { generate, parse, type ParsedPacket } from 'coap-packet';
import t, { type Test } from 'tap';
import { DeviceClient, type Tokens } from '../../device-sim/src/device-client.ts';
import { ACCESS_TOKEN_OPTION, AuthRequestKey, encodeCbor } from '../../gateway/src/wire/index.ts';
import { sampleSum, sampleValue } from '../helpers/admin-prometheus.ts';
import { blockValue, uintValue } from '../helpers/coap-wire.ts';
import { MUTATIONS, mutate, tokenOf } from '../helpers/coap-mutations.ts';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.ts';
import { seedFrom, seededRandom, type SeededRandom } from '../helpers/seeded-random.ts';

// A seeded fuzz run against the real gateway process: 20,000 datagrams mutated from valid
// requests, from a few sockets at a bounded rate. The gateway must live, keep its memory
// bounded, answer only what it was sent (from whom it was sent), and still serve afterwards.
// FUZZ_SEED=<n> replays a run.

const TOTAL = 20_000;
const SOCKETS = 4;
const RATE_PER_SEC = 2500;
const RSS_EVERY = 2000;
const MAX_RSS_MB = 300;

type Option = { name: string; value: Buffer };
type Build = (messageId: number, token: Buffer) => Buffer;

const uriPath = (path: string): Option[] => path.split('/').filter(Boolean).map((s) => ({ name: 'Uri-Path', value: Buffer.from(s) }));
const packet = (code: string, messageId: number, token: Buffer, options: Option[], payload: Buffer = Buffer.alloc(0), confirmable = true) =>
  generate({ code, messageId, token, confirmable, options, payload }, 65_535);

/** The valid requests every mutation starts from: what a device sends. */
function validRequests(gw: GatewayProcess, tokens: Tokens): Build[] {
  const access: Option = { name: String(ACCESS_TOKEN_OPTION), value: Buffer.from(tokens.accessToken) };
  const cbor: Option = { name: 'Content-Format', value: uintValue(60) };
  const device = gw.devices[0]!;
  const reading = encodeCbor(new Map<string, unknown>([['celsius', 21.5], ['seq', 7]]));
  return [
    (mid, token) => packet('POST', mid, token, [...uriPath('/auth'), cbor],
      encodeCbor(new Map<number, unknown>([[AuthRequestKey.deviceId, device.id], [AuthRequestKey.secret, device.secret]]))),
    (mid, token) => packet('POST', mid, token, [...uriPath('/auth/refresh'), cbor],
      encodeCbor(new Map<number, unknown>([[AuthRequestKey.refreshToken, tokens.refreshToken]]))),
    (mid, token) => packet('GET', mid, token, [...uriPath('/config'), access]),
    (mid, token) => packet('GET', mid, token, [...uriPath('/config'), access], undefined, false),
    (mid, token) => packet('POST', mid, token, [...uriPath('/telemetry/temp'), cbor, access], reading),
    (mid, token) => packet('POST', mid, token, [...uriPath('/telemetry/temp'), cbor, access,
      { name: 'Block1', value: blockValue(0, true, 5) }, { name: 'Size1', value: uintValue(1500) }], Buffer.alloc(512, 0xa0)),
    (mid, token) => packet('POST', mid, token, [...uriPath('/telemetry/temp'), cbor, access,
      { name: 'Block1', value: blockValue(1, false, 5) }], Buffer.alloc(300, 0xa0)),
    (mid, token) => packet('GET', mid, token, [...uriPath('/config'), access, { name: 'Block2', value: blockValue(1, false, 2) }]),
    (mid, token) => packet('GET', mid, token, [...uriPath('/.well-known/core'), { name: 'Uri-Query', value: Buffer.from('rt=gw*') }]),
    (mid) => generate({ code: '0.00', messageId: mid, confirmable: true, token: Buffer.alloc(0) }),
  ];
}

/**
 * One fuzzing device: remembers the message IDs and tokens it sent, acknowledges confirmable
 * answers as a device would, and sorts what it gets: answers that parse and match something it
 * sent, answers that do not parse, answers that match nothing, answers from another address.
 */
class FuzzSocket {
  readonly sentMessageIds = new Set<number>();
  readonly sentTokens = new Set<string>();
  readonly history: Buffer[] = [];
  readonly unparseable: string[] = [];
  readonly unmatched: string[] = [];
  readonly foreign: string[] = [];
  answers = 0;
  sendErrors = 0;
  #messageId: number;
  #waiter: { messageId: number; resolve: () => void } | undefined;

  private constructor(private readonly socket: Socket, private readonly port: number, firstMessageId: number) {
    this.#messageId = firstMessageId;
    socket.on('message', (data, rinfo) => this.#receive(data, rinfo.address, rinfo.port));
  }

  static async open(t: Test, port: number, firstMessageId: number): Promise<FuzzSocket> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, '127.0.0.1', () => { socket.off('error', reject); resolve(); });
    });
    // Send failures are counted by the send callback; an ICMP error must not become an uncaught 'error'.
    socket.on('error', () => undefined);
    t.teardown(() => new Promise<void>((resolve) => socket.close(() => resolve())));
    return new FuzzSocket(socket, port, firstMessageId);
  }

  nextMessageId(): number {
    this.#messageId = (this.#messageId + 1) & 0xffff;
    return this.#messageId;
  }

  send(datagram: Buffer): void {
    if (datagram.length >= 4) this.sentMessageIds.add(datagram.readUInt16BE(2));
    const token = tokenOf(datagram);
    if (token !== undefined) this.sentTokens.add(token);
    this.history.push(datagram);
    if (this.history.length > 64) this.history.shift();
    this.socket.send(datagram, this.port, '127.0.0.1', (err) => { if (err) this.sendErrors += 1; });
  }

  /** A ping; resolves at its RST, so every answer the gateway made without I/O before it is in. */
  barrier(): Promise<void> {
    const messageId = this.nextMessageId();
    return new Promise((resolve) => {
      this.#waiter = { messageId, resolve };
      this.send(generate({ code: '0.00', messageId, confirmable: true, token: Buffer.alloc(0) }));
    });
  }

  #receive(data: Buffer, address: string, port: number): void {
    this.answers += 1;
    if (address !== '127.0.0.1' || port !== this.port) this.foreign.push(`${address}:${port}`);
    let p: ParsedPacket;
    try {
      p = parse(data);
    } catch {
      this.unparseable.push(data.subarray(0, 32).toString('hex'));
      return;
    }
    // Empty ACK/RST: their message ID is ours; a response: its token is one we sent (and, piggybacked, its message ID too).
    const midOk = this.sentMessageIds.has(p.messageId);
    const tokenOk = this.sentTokens.has(p.token.toString('hex'));
    const ok = p.code === '0.00' ? midOk : p.ack ? midOk && tokenOk : tokenOk;
    if (!ok) this.unmatched.push(`${p.reset ? 'RST' : p.ack ? 'ACK' : p.confirmable ? 'CON' : 'NON'} ${p.code} mid ${p.messageId} token ${p.token.toString('hex')}`);
    if (p.confirmable && p.code !== '0.00') {
      this.socket.send(generate({ code: '0.00', messageId: p.messageId, ack: true, token: Buffer.alloc(0) }), this.port, '127.0.0.1');
    }
    if (p.reset && this.#waiter?.messageId === p.messageId) {
      this.#waiter.resolve();
      this.#waiter = undefined;
    }
  }
}

/** One datagram: junk, a replay of an earlier one, or a valid request with 0-3 mutations. */
function nextDatagram(random: SeededRandom, socket: FuzzSocket, builds: Build[], counts: Map<string, number>): Buffer {
  const count = (what: string) => counts.set(what, (counts.get(what) ?? 0) + 1);
  const roll = random.next();
  if (roll < 0.08) {
    count('garbage');
    return random.bytes(1 + random.int(random.int(4) === 0 ? 1400 : 48));
  }
  if (roll < 0.13 && socket.history.length > 0) {
    count('replay (same message ID)');
    return random.pick(socket.history);
  }
  // Now and then a message ID already used for another request: a duplicate to the gateway.
  const reuse = random.int(20) === 0 && socket.sentMessageIds.size > 0;
  const messageId = reuse ? random.pick([...socket.history.map((d) => (d.length >= 4 ? d.readUInt16BE(2) : 0))]) : socket.nextMessageId();
  if (reuse) count('reused message ID');
  let datagram = random.pick(builds)(messageId, random.bytes(random.int(9)));
  const mutations = random.int(10) === 0 ? 0 : 1 + random.int(3);
  if (mutations === 0) count('valid');
  for (let i = 0; i < mutations; i += 1) {
    const name = random.pick(MUTATIONS);
    count(name);
    datagram = mutate(datagram, name, random);
  }
  return datagram;
}

t.test(`${TOTAL} mutated datagrams: the gateway lives, stays bounded, answers only its senders, still serves`, async (t) => {
  const seed = seedFrom(process.env.FUZZ_SEED);
  t.comment(`seed ${seed} (FUZZ_SEED=${seed} replays this run)`);
  const random = seededRandom(seed);
  const gw = await startGatewayProcess(t, { devices: 4, admin: true });
  const client = await DeviceClient.open('127.0.0.1', gw.port, { timeoutMs: 10_000 });
  t.teardown(() => client.close());
  const { tokens } = await client.login(gw.devices[0]!.id, gw.devices[0]!.secret);
  if (tokens === undefined) throw new Error('the fuzzing device could not log in');
  const builds = validRequests(gw, tokens);
  const sockets = await Promise.all(Array.from({ length: SOCKETS }, (_, i) => FuzzSocket.open(t, gw.port, i * 0x4000)));
  const rssKb = [await gw.rssKb()];
  const counts = new Map<string, number>();

  const startedMs = performance.now();
  for (let i = 0; i < TOTAL; i += 1) {
    if (i % 25 === 0) {
      // Pacing: never faster than RATE_PER_SEC, so the run measures the gateway, not the kernel's queue.
      const aheadMs = startedMs + (i / RATE_PER_SEC) * 1000 - performance.now();
      await new Promise((resolve) => (aheadMs > 0 ? setTimeout(resolve, aheadMs) : setImmediate(resolve)));
    }
    if (i > 0 && i % RSS_EVERY === 0) {
      rssKb.push(await gw.rssKb());
      if (!gw.alive()) break;
    }
    const socket = sockets[random.int(SOCKETS)]!;
    socket.send(nextDatagram(random, socket, builds, counts));
  }
  const sendMs = performance.now() - startedMs;
  await Promise.all(sockets.map((s) => s.barrier()));
  rssKb.push(await gw.rssKb());

  t.ok(gw.alive(), 'the gateway process is alive after the run');
  const maxMb = Math.max(...rssKb) / 1024;
  t.comment(`sent ${TOTAL} datagrams in ${Math.round(sendMs)} ms (${Math.round(TOTAL / (sendMs / 1000))}/s) from ${SOCKETS} sockets`);
  t.comment(`RSS MB every ${RSS_EVERY}: ${rssKb.map((kb) => (kb / 1024).toFixed(1)).join(' ')}`);
  t.comment(`mix: ${[...counts].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  t.ok(maxMb < MAX_RSS_MB, `RSS stayed under ${MAX_RSS_MB} MB (max ${maxMb.toFixed(1)} MB)`);

  const answers = sockets.map((s) => s.answers);
  t.comment(`answers per socket: ${answers.join(' ')} (${answers.reduce((a, b) => a + b, 0)} in all); backend requests ${gw.backend.requests.length}`);
  t.ok(answers.every((n) => n > 0), 'every socket got answers');
  const foreign = sockets.flatMap((s) => s.foreign);
  const unparseable = sockets.flatMap((s) => s.unparseable);
  const unmatched = sockets.flatMap((s) => s.unmatched);
  t.same(foreign.slice(0, 5), [], `every answer came from the gateway's address and port (${foreign.length} did not)`);
  t.same(unparseable.slice(0, 5), [], `every answer parses as CoAP (${unparseable.length} did not)`);
  t.same(unmatched.slice(0, 5), [], `every answer matches a message ID or token that socket sent (${unmatched.length} did not)`);
  t.equal(sockets.reduce((n, s) => n + s.sendErrors, 0), 0, 'every datagram was sent');

  const m = await gw.metrics();
  const dropped = m.samples.filter((s) => s.name === 'coap_gateway_datagrams_dropped_total').map((s) => `${s.labels.reason} ${s.value}`);
  t.comment(`dropped by reason: ${dropped.join(', ')}; block buffer ${sampleValue(m, 'coap_gateway_block_buffer_bytes')} bytes`);
  t.equal(sampleSum(m, 'coap_gateway_datagrams_dropped_total', { reason: 'internal' }), 0,
    'no datagram reached the last-resort guard (no internal error in the endpoint)');
  const errors = (await gw.logLines()).filter((line) => typeof line.level === 'number' && line.level >= 50);
  t.same(errors.slice(0, 3).map((line) => `${String(line.msg)}: ${JSON.stringify(line.err ?? '').slice(0, 300)}`), [],
    `no error in the gateway's log (${errors.length})`);
  await gw.assertStillServes(t);
});

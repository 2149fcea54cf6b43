import { randomBytes } from 'node:crypto';
import type { ParsedPacket } from 'coap-packet';
import t, { type Test } from 'tap';
import { AuthRequestKey, ContentFormat, ErrorKey, WireError, decodeCbor, encodeCbor } from '../../gateway/src/wire/index.ts';
import { isAnswerTo, rawRequest, uintOption } from '../helpers/bridge-raw-coap.ts';
import { metricValue } from '../helpers/coap-wire.ts';
import { startHarness, type Harness } from '../helpers/harness.ts';
import { UdpProbe } from '../helpers/udp-probe.ts';

// Failed logins are counted per source and per device id (rate-limiter-flexible, memory store),
// 4.29 with Max-Age past the budget, in a table bounded by count whatever ids an attacker sends.

const ENTRIES = 'coap_gateway_login_limiter_entries';
/** The limiter's bound when config sets none (login-limiter.ts). */
const DEFAULT_MAX_ENTRIES = 100_000;
/** Datagrams in flight at once: the flood is as fast as the gateway answers, and bounded. */
const WINDOW = 100;

function loginDatagram(deviceId: string, secret: Buffer, messageId: number, token: Buffer): Buffer {
  return rawRequest({
    method: 'POST', path: ['auth'], messageId, token, contentFormat: ContentFormat.cbor,
    payload: encodeCbor(new Map<number, unknown>([[AuthRequestKey.deviceId, deviceId], [AuthRequestKey.secret, secret]])),
  });
}

/** An attacker's socket: sends failed logins, `WINDOW` at a time, each with a message ID of its own. */
class Attacker {
  readonly #probe: UdpProbe;
  #nextMessageId = 0;

  private constructor(probe: UdpProbe) {
    this.#probe = probe;
  }

  static async open(t: Test, h: Harness, address: string): Promise<Attacker> {
    return new Attacker(await UdpProbe.open(t, { address: '127.0.0.1', port: h.port }, address));
  }

  /** The answers, in the order of `ids`. */
  async failedLogins(ids: readonly string[]): Promise<ParsedPacket[]> {
    const answers: ParsedPacket[] = [];
    for (let start = 0; start < ids.length; start += WINDOW) {
      const batch = ids.slice(start, start + WINDOW).map((id) => ({ id, messageId: this.#nextMessageId++, token: randomBytes(8) }));
      await Promise.all(batch.map(({ id, messageId, token }) =>
        this.#probe.send(loginDatagram(id, Buffer.alloc(32, 7), messageId, token))));
      answers.push(...(await Promise.all(batch.map(({ id, token }) => this.#probe.next(isAnswerTo(token), `answer to login ${id}`)))));
    }
    return answers;
  }
}

/**
 * Budgets are per whole minute of the gateway's clock: start the test at the start of one, so
 * that a run crossing into the next minute cannot hand out a second budget halfway through.
 */
function atWindowStart(h: Harness): void {
  h.clock.advanceSec((60_000 - (h.clock.nowMs() % 60_000)) / 1000);
}

const wireCode = (p: ParsedPacket) => (decodeCbor(p.payload) as Map<number, unknown>).get(ErrorKey.code);
const uniqueIds = (prefix: string, n: number) =>
  Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(6, '0')}-`.padEnd(60, 'x'));

/** Answers in short form: `4.01`, or `4.29 wire 11 max-age ok` for a well-formed 4.29. */
function summary(a: ParsedPacket): string {
  if (a.code !== '4.29') return a.code;
  const maxAgeSec = uintOption(a, 'Max-Age');
  const maxAge = maxAgeSec !== undefined && maxAgeSec >= 1 && maxAgeSec <= 60 ? 'ok' : String(maxAgeSec);
  return `4.29 wire ${String(wireCode(a))} max-age ${maxAge}`;
}

/** The budget's failures get 4.01, every later one 4.29 with its wire code and a Max-Age until the window ends. */
const budgetThenLimited = (count: number, budget: number) =>
  Array.from({ length: count }, (_, i) => (i < budget ? '4.01' : `4.29 wire ${WireError.tooManyRequests} max-age ok`));

/**
 * The logins of one window are in flight at once, and each waits on its own store read, so the
 * gateway may count them in another order than they were sent: which of them spent the budget
 * is not fixed, how many did is. Sorted, the 4.01s come first, as budgetThenLimited lists them.
 */
function expectBudget(t: Test, answers: readonly ParsedPacket[], budget: number, what: string): void {
  t.same(answers.map(summary).sort(), budgetThenLimited(answers.length, budget),
    `${what}: ${budget} x 4.01, the other ${answers.length - budget} x 4.29 with Max-Age`);
}

t.test('a flood of failed logins with unique 60-character ids keeps the limiter bounded; the gateway serves', async (t) => {
  const h = await startHarness(t);
  const secret = await h.provision('attacked-device');
  atWindowStart(h);

  // One source: 5,000 unique ids. Once it is limited its ids are not counted at all.
  const one = await Attacker.open(t, h, '127.0.0.1');
  const ids = uniqueIds('flood', 5_000);
  ids[2_500] = 'attacked-device';
  const answers = await one.failedLogins(ids);
  t.equal(answers.length, 5_000, 'every login answered');
  expectBudget(t, answers, 10, 'one source');
  t.equal(await metricValue(h, ENTRIES), 11, 'the source and the ten ids it failed with before its limit');

  // Twenty sources (127.0.0.0/8 is all loopback on Linux), unique ids each.
  const sources = await Promise.all(Array.from({ length: 20 }, (_, i) => Attacker.open(t, h, `127.0.1.${i + 1}`)));
  const perSource = await Promise.all(sources.map((source, i) => source.failedLogins(uniqueIds(`src${i}`, 50))));
  t.same(perSource.map((answers) => answers.map(summary).sort()), perSource.map(() => budgetThenLimited(50, 10)),
    'each of twenty sources: 10 x 4.01, the other 40 x 4.29 with Max-Age');
  const entries = await metricValue(h, ENTRIES);
  t.equal(entries, 11 + 20 * 11, 'each source holds itself and its budget of ids');
  t.ok(entries <= DEFAULT_MAX_ENTRIES, `under the bound (${entries} <= ${DEFAULT_MAX_ENTRIES})`);
  t.equal(await metricValue(h, 'coap_gateway_evictions_total', { table: 'login_limiter' }), 0, 'nothing evicted below the bound');
  t.equal(await metricValue(h, 'coap_gateway_logins_total', { method: 'secret', outcome: 'rate_limited' }), 4_990 + 20 * 40, 'every 4.29 counted');

  const device = await h.device();
  t.equal((await device.login('attacked-device', secret)).answer.code, '2.01', 'a device named in the flood still logs in');
  await h.assertStillServes(t);

  h.clock.advanceSec(60);
  t.equal(await metricValue(h, ENTRIES), 0, 'a window later the table is empty');
});

t.test('per source: 4.29 with Max-Age past the budget, until Max-Age; others are not affected; the right secret gets in', async (t) => {
  const h = await startHarness(t, { config: { loginFailuresPerMinute: 3 } });
  const secret = await h.provision('sensor-1');
  await h.provision('sensor-2');
  atWindowStart(h);
  // The attacker shares 127.0.0.1 with the device, which logs in through node-coap.
  const attacker = await Attacker.open(t, h, '127.0.0.1');
  const answers = await attacker.failedLogins(['guess-1', 'guess-2', 'guess-3', 'guess-4', 'sensor-1']);
  expectBudget(t, answers, 3, 'attacker');
  const maxAgeSec = uintOption(answers.find((a) => a.code === '4.29')!, 'Max-Age')!;

  const elsewhere = await Attacker.open(t, h, '127.0.0.2');
  const [other] = await elsewhere.failedLogins(['sensor-2']);
  t.equal(other!.code, '4.01', 'another device on another address: 4.01, not limited');

  const device = await h.device();
  t.equal((await device.login('sensor-1', secret)).answer.code, '2.01', 'the right secret logs in from the limited address');
  t.equal((await device.login('sensor-1', Buffer.alloc(32, 1))).answer.code, '4.29', 'a wrong one from there is still limited');

  // Two seconds short, not one: the clock is real time plus what the test adds, and moves on.
  h.clock.advanceSec(maxAgeSec - 2);
  t.equal((await attacker.failedLogins(['guess-5']))[0]!.code, '4.29', 'shortly before Max-Age ends: still 4.29');
  h.clock.advanceSec(2);
  t.equal((await attacker.failedLogins(['guess-6']))[0]!.code, '4.01', 'when Max-Age ends: its budget is back');
  await h.assertStillServes(t);
});

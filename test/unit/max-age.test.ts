import { parse } from 'coap-packet';
import t from 'tap';
import { cacheControlToMaxAge, retryAfterToMaxAge } from '../../gateway/src/bridge/status-map.ts';
import { clampMaxAge, MAX_AGE_LIMIT_SEC } from '../../gateway/src/max-age.ts';
import { encodeReply } from '../../gateway/src/coap/encode-reply.ts';

// RFC 7252 section 5.10.5: Max-Age is a uint of 0-4 bytes, so 0 .. 2^32 - 1 seconds, whatever the
// source (Retry-After seconds or HTTP-date, Cache-Control max-age, a limiter's own wait).

const LIMIT = 2 ** 32 - 1;
const nowMs = Date.parse('2024-01-01T00:00:00Z');
/** An IMF-fixdate `sec` seconds after nowMs. */
const dateIn = (sec: number): string => new Date(nowMs + sec * 1000).toUTCString();

/** The Max-Age option of an encoded 5.03, as bytes on the wire. */
function maxAgeOnTheWire(maxAgeSec: number): Buffer | undefined {
  const datagram = encodeReply({ response: { code: '5.03', maxAgeSec } }, 'ack', 1, Buffer.alloc(0));
  return parse(datagram).options.find((o) => o.name === 'Max-Age')?.value;
}
const uint = (bytes: Buffer): number => [...bytes].reduce((n, b) => n * 256 + b, 0);

t.test('the limit is 2^32 - 1', async (t) => {
  t.equal(MAX_AGE_LIMIT_SEC, LIMIT);
});

t.test('clampMaxAge: whole seconds from 0 to 2^32 - 1, rounded up, anything else made safe', async (t) => {
  const cases: [number, number][] = [
    [0, 0], [1, 1], [60, 60], [1.2, 2], [0.001, 1], [LIMIT - 1, LIMIT - 1], [LIMIT, LIMIT], [LIMIT + 1, LIMIT],
    [2 ** 40, LIMIT], [1e300, LIMIT], [Number.POSITIVE_INFINITY, LIMIT],
    [-1, 0], [-0.5, 0], [Number.NEGATIVE_INFINITY, 0], [Number.NaN, 0],
  ];
  for (const [input, expected] of cases) t.equal(clampMaxAge(input), expected, `${input} -> ${expected}`);
});

t.test('Retry-After as an HTTP-date far in the future is clamped (it was not: a 5-byte Max-Age)', async (t) => {
  t.equal(retryAfterToMaxAge(dateIn(LIMIT), nowMs), LIMIT, 'exactly 2^32 - 1 s ahead: kept');
  t.equal(retryAfterToMaxAge(dateIn(LIMIT + 1), nowMs), LIMIT, 'one second more: clamped');
  t.equal(retryAfterToMaxAge(dateIn(2 ** 36), nowMs), LIMIT, '2^36 s ahead: clamped');
  t.equal(retryAfterToMaxAge('Fri, 31 Dec 9999 23:59:59 GMT', nowMs), LIMIT, 'the last IMF-fixdate there is');
  t.equal(retryAfterToMaxAge('Friday, 31-Dec-99 23:59:59 GMT', nowMs), 0, 'RFC 850 two-digit year read as 1999: in the past, 0');
  t.equal(retryAfterToMaxAge('Fri Dec 31 23:59:59 9999', nowMs), LIMIT, 'asctime form');
  t.equal(retryAfterToMaxAge(dateIn(-3600), nowMs), 0, 'in the past: 0');
});

t.test('Retry-After in seconds and Cache-Control max-age: clamped however many digits', async (t) => {
  for (const digits of ['4294967295', '4294967296', '99999999999', '9'.repeat(400)]) {
    const expected = Math.min(Number(digits), LIMIT);
    t.equal(retryAfterToMaxAge(digits, nowMs), expected, `Retry-After: ${digits.slice(0, 20)} (${digits.length} digits)`);
    t.equal(cacheControlToMaxAge(`max-age=${digits}`), expected, `max-age=${digits.slice(0, 20)} (${digits.length} digits)`);
  }
});

t.test('whatever a source says, the Max-Age sent is 0-4 bytes, and the value is kept when it fits', async (t) => {
  const sources: [string, number | undefined][] = [
    ['Retry-After HTTP-date in 2^33 s', retryAfterToMaxAge(dateIn(2 ** 33), nowMs)],
    ['Retry-After HTTP-date in the year 9999', retryAfterToMaxAge('Fri, 31 Dec 9999 23:59:59 GMT', nowMs)],
    ['Retry-After 400 nines', retryAfterToMaxAge('9'.repeat(400), nowMs)],
    ['Cache-Control max-age=2^33', cacheControlToMaxAge(`max-age=${2 ** 33}`)],
    ['Retry-After 120', retryAfterToMaxAge('120', nowMs)],
  ];
  for (const [name, maxAge] of sources) {
    const value = maxAgeOnTheWire(maxAge!);
    t.ok(value !== undefined && value.length <= 4, `${name}: ${value?.length} bytes`);
    t.equal(uint(value ?? Buffer.alloc(0)), Math.min(maxAge!, LIMIT), `${name}: value ${maxAge}`);
  }
});

// The encoder is where every source meets (the bridge, the login limiter, the endpoint's own 5.03):
// a value that was never clamped upstream must still go out as 4 bytes at most.
t.test('the encoder itself never writes more than 4 bytes of Max-Age', async (t) => {
  for (const raw of [2 ** 32, 2 ** 40, Number.MAX_SAFE_INTEGER]) {
    const value = maxAgeOnTheWire(raw);
    t.ok(value !== undefined && value.length <= 4, `${raw}: ${value?.length} bytes`);
    t.equal(uint(value ?? Buffer.alloc(0)), LIMIT, `${raw}: sent as 2^32 - 1`);
  }
});

import t from 'tap';
import { cacheControlToMaxAge, coapCodeFor, retryAfterToMaxAge } from '../../gateway/src/bridge/status-map.ts';

// The backend guide's status table (RFC 8075 section 7, RFC 7252 section 10.1), written out here rather than
// read from HTTP_TO_COAP, so a changed table entry fails this test.
const FIXED: [number, string][] = [
  [201, '2.01'], [204, '2.04'], [304, '2.03'],
  [400, '4.00'], [401, '4.03'], [403, '4.03'], [404, '4.04'], [405, '4.05'], [406, '4.06'], [412, '4.12'],
  [413, '4.13'], [415, '4.15'], [429, '4.29'],
  [500, '5.00'], [501, '5.01'], [502, '5.02'], [503, '5.03'], [504, '5.04'],
];

t.test('each fixed row maps the same whatever the method', async (t) => {
  for (const [status, code] of FIXED) {
    for (const method of ['GET', 'POST', 'PUT', 'DELETE']) t.equal(coapCodeFor(status, method), code, `${method} ${status} -> ${code}`);
  }
});

t.test('200 and other 2xx depend on the method', async (t) => {
  const cases: [number, string, string][] = [
    [200, 'GET', '2.05'], [200, 'FETCH', '2.05'], [200, 'POST', '2.04'], [200, 'PUT', '2.04'], [200, 'DELETE', '2.02'],
    [202, 'POST', '2.04'], [203, 'GET', '2.05'], [206, 'GET', '2.05'], [208, 'DELETE', '2.02'],
  ];
  for (const [status, method, code] of cases) t.equal(coapCodeFor(status, method), code, `${method} ${status} -> ${code}`);
});

t.test('statuses without a row: other 4xx -> 4.00, other 5xx -> 5.00, 1xx and other 3xx -> 5.02', async (t) => {
  const cases: [number, string][] = [
    [402, '4.00'], [409, '4.00'], [418, '4.00'], [451, '4.00'], [499, '4.00'],
    [505, '5.00'], [507, '5.00'], [599, '5.00'],
    [100, '5.02'], [103, '5.02'], [301, '5.02'], [302, '5.02'], [307, '5.02'], [308, '5.02'], [600, '5.02'],
  ];
  for (const [status, code] of cases) t.equal(coapCodeFor(status, 'GET'), code, `${status} -> ${code}`);
});

t.test('Retry-After in seconds -> Max-Age', async (t) => {
  const nowMs = Date.parse('2024-01-01T00:00:00Z');
  t.equal(retryAfterToMaxAge('120', nowMs), 120);
  t.equal(retryAfterToMaxAge(' 5 ', nowMs), 5, 'surrounding whitespace');
  t.equal(retryAfterToMaxAge('0', nowMs), 0);
  t.equal(retryAfterToMaxAge('99999999999', nowMs), 0xffffffff, 'capped to the 4-byte Max-Age option');
  t.equal(retryAfterToMaxAge(undefined, nowMs), undefined, 'no header, no Max-Age');
});

t.test('Retry-After as an HTTP-date -> seconds from the injected now, never negative', async (t) => {
  const nowMs = Date.parse('2024-01-01T00:00:00Z');
  t.equal(retryAfterToMaxAge('Mon, 01 Jan 2024 00:01:30 GMT', nowMs), 90, 'IMF-fixdate');
  t.equal(retryAfterToMaxAge('Monday, 01-Jan-24 00:01:30 GMT', nowMs), 90, 'obsolete RFC 850 form (RFC 9110 section 5.6.7)');
  t.equal(retryAfterToMaxAge('Mon, 01 Jan 2024 00:01:30 GMT', nowMs + 500), 90, 'partial seconds round up');
  t.equal(retryAfterToMaxAge('Sun, 06 Nov 1994 08:49:37 GMT', nowMs), 0, 'a date in the past: retry now');
});

t.test('Retry-After that is neither delay-seconds nor an HTTP-date is ignored (RFC 9110 section 10.2.3)', async (t) => {
  const nowMs = Date.parse('2024-01-01T00:00:00Z');
  for (const garbage of ['soon', '', '12abc', '1e3', '0x10', '2 hours', '1.5', '-5']) {
    t.equal(retryAfterToMaxAge(garbage, nowMs), undefined, JSON.stringify(garbage));
  }
});

t.test('Cache-Control -> Max-Age (RFC 8075 section 6.2)', async (t) => {
  const cases: [string | undefined, number | undefined][] = [
    ['max-age=30', 30], ['public, max-age=30', 30], ['MAX-AGE=5', 5], ['max-age=0', 0],
    ['max-age=99999999999', 0xffffffff],
    ['no-store', 0], ['no-cache', 0], ['private, max-age=60', 0], ['no-store, max-age=60', 0],
    ['s-maxage=10', undefined], ['public', undefined], [undefined, undefined],
  ];
  for (const [header, maxAge] of cases) t.equal(cacheControlToMaxAge(header), maxAge, `${JSON.stringify(header)} -> ${maxAge}`);
});

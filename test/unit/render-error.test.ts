import t from 'tap';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { noteOf, renderError } from '../../gateway/src/coap/render-error.ts';
import { AuthError, BridgeError, ERROR_TABLE, GatewayError, RequestError, type GatewayErrorCode } from '../../gateway/src/errors.ts';
import { ContentFormat } from '../../gateway/src/wire/index.ts';

// The wire contract: error bodies are {0: wire code, 4: server time} with INTEGER keys, checked byte by
// byte (cbor-x turns the integer keys of a plain object into text; decoding would hide that).

const SERVER_TIME_SEC = 1_700_000_000; // 0x6553f100: a 4-byte unsigned integer, 1a 65 53 f1 00
const BIG_REQUEST = 1000;

function logger() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'info' }, sink), lines };
}

/** The exact CBOR of {0: wire, 4: time}: map(2), uint 0, wire (0-23 in one byte, 24-255 as 0x18 and a byte), uint 4, uint32 time. */
function expectedBody(wire: number, timeSec = SERVER_TIME_SEC): Buffer {
  if (wire > 255) throw new TypeError('wire codes are CBOR integers of at most two bytes (0-255)');
  const time = Buffer.alloc(5);
  time[0] = 0x1a;
  time.writeUInt32BE(timeSec, 1);
  return Buffer.concat([Buffer.from([0xa2, 0x00, ...(wire > 23 ? [0x18, wire] : [wire]), 0x04]), time]);
}

t.test('the error body is the CBOR map {0: wire code, 4: server time} with integer keys, byte for byte', async (t) => {
  const { log } = logger();
  const response = renderError(new RequestError('GW_ERR_NOT_FOUND', 'no route for /x'), 'r', BIG_REQUEST, SERVER_TIME_SEC, log);
  t.equal(response.code, '4.04');
  t.equal(response.contentFormat, ContentFormat.cbor);
  t.equal(response.payload?.toString('hex'), 'a20007041a6553f100');
  t.equal(response.payload?.subarray(0, 2).toString('hex'), 'a200', 'map of 2, first key the integer 0 (not the text "0", 61 30)');
  const small = renderError(new AuthError('GW_ERR_AUTH_TOKEN_EXPIRED', 'exp'), 'r', BIG_REQUEST, 23, log);
  t.equal(small.payload?.toString('hex'), 'a200040417', 'a small server time is a one-byte integer');
});

t.test('every error code renders its CoAP code and wire code', async (t) => {
  const { log } = logger();
  for (const code of Object.keys(ERROR_TABLE) as GatewayErrorCode[]) {
    const err = new GatewayError(code, `why ${code}`);
    const response = renderError(err, 'r', BIG_REQUEST, SERVER_TIME_SEC, log);
    t.equal(response.code, ERROR_TABLE[code].coap, `${code}: ${ERROR_TABLE[code].coap}`);
    t.same(response.payload, expectedBody(ERROR_TABLE[code].wire), `${code}: body with wire code ${ERROR_TABLE[code].wire}`);
    t.equal(noteOf(err).code, code, `${code}: the log learns the code`);
    t.equal(noteOf(err).reason, `why ${code}`, `${code}: and why`);
  }
});

t.test('the body is dropped when the answer would be larger than the request (RFC 7252 section 11.3)', async (t) => {
  const { log } = logger();
  const err = new AuthError('GW_ERR_AUTH_TOKEN_MISSING', 'no token');
  const body = expectedBody(ERROR_TABLE.GW_ERR_AUTH_TOKEN_MISSING.wire);
  // Header 4 + Content-Format option 2 + payload marker 1 + body: the answer's size without a token.
  const answerBytes = body.length + 7;
  const fits = renderError(err, 'r', answerBytes, SERVER_TIME_SEC, log);
  t.same(fits.payload, body, 'a request as large as the answer gets the body');
  t.equal(fits.contentFormat, ContentFormat.cbor);
  for (const size of [answerBytes - 1, 4, 0]) {
    const bare = renderError(err, 'r', size, SERVER_TIME_SEC, log);
    t.equal(bare.code, '4.01', `request of ${size} bytes: still 4.01`);
    t.equal(bare.payload, undefined, `request of ${size} bytes: no body`);
    t.equal(bare.contentFormat, undefined, `request of ${size} bytes: no Content-Format either`);
  }
});

t.test('an unknown error becomes 5.00 with wire code 15, logged, its message never sent', async (t) => {
  const { log, lines } = logger();
  for (const thrown of [new Error('secret detail: password=hunter2'), 'a string', undefined, { code: 'GW_ERR_NOT_FOUND' }]) {
    const response = renderError(thrown, 'req-1', BIG_REQUEST, SERVER_TIME_SEC, log);
    t.equal(response.code, '5.00', `${String(thrown)}: 5.00`);
    t.same(response.payload, expectedBody(15), `${String(thrown)}: {0: 15, 4: time}`);
    t.equal(noteOf(thrown).code, 'GW_ERR_INTERNAL');
    t.equal(noteOf(thrown).reason, 'internal error');
  }
  t.equal(lines.filter((l) => l.level === 50 && l.reqId === 'req-1').length, 4, 'each logged as an error with its request id');
});

t.test('Max-Age is carried from the error, with or without a body', async (t) => {
  const { log } = logger();
  const err = new BridgeError('GW_ERR_BACKEND_UNAVAILABLE', 'backend said 503', { maxAgeSec: 30 });
  const withBody = renderError(err, 'r', BIG_REQUEST, SERVER_TIME_SEC, log);
  t.equal(withBody.code, '5.03');
  t.equal(withBody.maxAgeSec, 30);
  t.same(withBody.payload, expectedBody(13));
  // Header (4) + Max-Age (delta 14: 2 header bytes, 1 value byte) = 7 bytes.
  const noBody = renderError(err, 'r', 7, SERVER_TIME_SEC, log);
  t.equal(noBody.maxAgeSec, 30, 'a 7-byte request: Max-Age fits, the body does not');
  t.equal(noBody.payload, undefined);
  t.equal(renderError(err, 'r', 6, SERVER_TIME_SEC, log).maxAgeSec, undefined,
    'a 6-byte request: not even Max-Age fits, the bare code (RFC 7252 section 11.3)');
  t.equal(renderError(new RequestError('GW_ERR_BAD_REQUEST', 'x'), 'r', BIG_REQUEST, 1, log).maxAgeSec, undefined, 'no Max-Age unless given');
});

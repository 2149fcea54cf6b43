import t from 'tap';
import { decodePlaintext, encodePlaintext, type CoapOption } from '../../gateway/src/wire/oscore/index.ts';

// The plaintext (RFC 8613 section 5.3, Figure 9): code, options, 0xff and payload. Expected
// bytes are written out by hand from RFC 7252 section 3.1's option format.

const hex = (text: string): Buffer => Buffer.from(text, 'hex');
const opt = (number: number, value: string | Buffer): CoapOption => ({ number, value: Buffer.isBuffer(value) ? value : Buffer.from(value) });
const listed = (options: readonly CoapOption[]) => options.map((o) => `${o.number}=${o.value.toString('hex')}`);

t.test('encodePlaintext: the code byte, the option deltas, the payload marker only with a payload', async (t) => {
  t.equal(encodePlaintext({ code: '0.01', options: [opt(11, 'tv1')], payload: Buffer.alloc(0) }).toString('hex'), '01b3747631',
    'GET /tv1 (RFC 8613 C.4): code 01, delta 11 length 3');
  t.equal(encodePlaintext({ code: '2.05', options: [], payload: Buffer.from('Hello World!') }).toString('hex'),
    '45ff48656c6c6f20576f726c6421', '2.05 with a payload (RFC 8613 C.7)');
  t.equal(encodePlaintext({ code: '2.04', options: [], payload: Buffer.alloc(0) }).toString('hex'), '44', 'a code alone');
  t.equal(encodePlaintext({ code: '0.02', options: [opt(65_003, hex('aa'))], payload: Buffer.alloc(0) }).toString('hex'),
    '02e1fcdeaa', 'an Access-Token (65003): delta 14, extended 65003 - 269 = 0xfcde');
  t.equal(encodePlaintext({ code: '0.02', options: [opt(252, hex('0102'))], payload: Buffer.alloc(0) }).toString('hex'),
    '02d2ef0102', 'Echo (252): delta 13, extended 252 - 13 = 0xef');
});

t.test('encodePlaintext: options come out in number order, repeated ones in their order', async (t) => {
  const options = [opt(15, 'b=2'), opt(11, 'a'), opt(4, hex('01')), opt(11, 'b'), opt(15, 'a=1'), opt(4, hex('02')), opt(11, 'c')];
  const plaintext = encodePlaintext({ code: '0.01', options, payload: Buffer.alloc(0) });
  // ETag 01, ETag 02, Uri-Path a, b, c, Uri-Query b=2, a=1
  t.equal(plaintext.toString('hex'), '01' + '4101' + '0102' + '7161' + '0162' + '0163' + '43623d32' + '03613d31');
  const back = decodePlaintext(plaintext);
  t.same(listed(back!.options), ['4=01', '4=02', '11=61', '11=62', '11=63', '15=623d32', '15=613d31'], 'and read back the same way');
  t.same(listed(options), ['15=623d32', '11=61', '4=01', '11=62', '15=613d31', '4=02', '11=63'], 'the caller\'s array is left as it was');
});

t.test('decodePlaintext: the message back, options by number (known or not)', async (t) => {
  const message = decodePlaintext(hex('02' + 'b3747631' /* Uri-Path tv1 */ + 'e1fcd3aa' /* delta 64992 = 269 + 0xfcd3 */ + 'ff' + '0102'));
  t.same({ code: message?.code, options: listed(message!.options), payload: message?.payload.toString('hex') },
    { code: '0.02', options: ['11=747631', '65003=aa'], payload: '0102' });
  const response = decodePlaintext(hex('45ff48656c6c6f20576f726c6421'));
  t.same({ code: response?.code, payload: response?.payload.toString() }, { code: '2.05', payload: 'Hello World!' });
});

t.test('decodePlaintext: what is no message gives undefined, never a throw', async (t) => {
  const cases: [string, string][] = [
    ['', 'empty (no code)'],
    ['00', 'code 0.00, the Empty message'],
    ['00b3747631', 'code 0.00 with options'],
    ['01ff', 'a payload marker with no payload'],
    ['01b374', 'Uri-Path of length 3 with 1 byte left'],
    ['01d0', 'delta 13 without its extension byte'],
    ['01e0aa', 'delta 14 with one of its two extension bytes'],
    ['01f1aa', 'delta 15 that is not the payload marker'],
    ['011f', 'length 15 (reserved)'],
    ['01bd', 'length 13 without its extension byte'],
  ];
  for (const [value, what] of cases) t.equal(decodePlaintext(hex(value)), undefined, `${value || "''"}: ${what}`);
});

t.test('encodePlaintext: misuse is a TypeError', async (t) => {
  t.throws(() => encodePlaintext({ code: '0.00', options: [], payload: Buffer.alloc(0) }), TypeError, 'the Empty code');
  t.throws(() => encodePlaintext({ code: 'GET', options: [], payload: Buffer.alloc(0) }), TypeError, 'a method name, not c.dd');
  t.throws(() => encodePlaintext({ code: '0.32', options: [], payload: Buffer.alloc(0) }), TypeError, 'detail 32');
  t.throws(() => encodePlaintext({ code: '8.00', options: [], payload: Buffer.alloc(0) }), TypeError, 'class 8');
  t.throws(() => encodePlaintext({ code: '2.05', options: [], payload: 'text' as unknown as Buffer }), TypeError, 'a text payload');
  t.throws(() => encodePlaintext({ code: '2.05', options: [], payload: Buffer.alloc(65_536) }), TypeError,
    'more than AES-CCM with a 13-byte nonce can take (65535 bytes)');
});

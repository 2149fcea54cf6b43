import t from 'tap';
import { createAddressValidator } from '../../gateway/src/coap/address-validation.ts';

// RFC 9175 section 2.4: the Echo value of a 4.01 proves that a device receives at its source
// address. A value is good for the address it was made for, in its own minute and the next, and
// only in the process (key) that made it. Time moves by the injected clock.

const WINDOW_MS = 60_000;
const ADDRESS = '192.0.2.10';
const OTHER_ADDRESS = '192.0.2.11';
const KEY = Buffer.alloc(32, 0x11);

function validator(key: Buffer = KEY) {
  // The first millisecond of a window, so that "the next window" is exactly WINDOW_MS away.
  let now = 28_333_333 * WINDOW_MS;
  const addresses = createAddressValidator(() => now, key);
  return { addresses, advanceMs: (ms: number) => { now += ms; } };
}

t.test('a value made for an address is accepted from that address', async (t) => {
  const { addresses } = validator();
  const echo = addresses.challenge(ADDRESS);
  t.ok(echo.length >= 1 && echo.length <= 40, `${echo.length} bytes: fits the Echo option (1 to 40 bytes)`);
  t.equal(addresses.verify(ADDRESS, echo), true);
  t.equal(addresses.verify(ADDRESS, echo), true, 'and again: nothing is used up or stored');
  const v6 = '2001:db8::b';
  t.equal(addresses.verify(v6, addresses.challenge(v6)), true, 'an IPv6 address too');
});

t.test('a value made for one address is refused from another', async (t) => {
  const { addresses } = validator();
  const echo = addresses.challenge(ADDRESS);
  t.equal(addresses.verify(OTHER_ADDRESS, echo), false, OTHER_ADDRESS);
  t.equal(addresses.verify('192.0.2.1', echo), false, 'a prefix of the address');
  t.equal(addresses.verify(`${ADDRESS}0`, echo), false, 'the address with a digit more');
  t.equal(addresses.verify('::ffff:192.0.2.10', echo), false, 'the same host written as IPv4-mapped IPv6 is another address');
  t.equal(addresses.verify(OTHER_ADDRESS, addresses.challenge(OTHER_ADDRESS)), true, 'while the other address\'s own value is accepted');
});

t.test('a value with any byte changed is refused', async (t) => {
  const { addresses } = validator();
  const echo = addresses.challenge(ADDRESS);
  for (let i = 0; i < echo.length; i += 1) {
    for (const bit of [0x01, 0x80]) {
      const changed = Buffer.from(echo);
      changed[i] = changed[i]! ^ bit;
      t.equal(addresses.verify(ADDRESS, changed), false, `byte ${i} ^ 0x${bit.toString(16)}`);
    }
  }
  t.equal(addresses.verify(ADDRESS, echo), true, 'the unchanged value is still accepted');
});

t.test('a value of the wrong length, or none, is refused', async (t) => {
  const { addresses } = validator();
  const echo = addresses.challenge(ADDRESS);
  t.equal(addresses.verify(ADDRESS, undefined), false, 'no Echo option');
  t.equal(addresses.verify(ADDRESS, Buffer.alloc(0)), false, 'an empty value');
  t.equal(addresses.verify(ADDRESS, echo.subarray(0, 1)), false, 'the window byte alone');
  t.equal(addresses.verify(ADDRESS, echo.subarray(0, echo.length - 1)), false, 'one byte short');
  t.equal(addresses.verify(ADDRESS, Buffer.concat([echo, Buffer.from([0])])), false, 'one byte more');
  t.equal(addresses.verify(ADDRESS, Buffer.concat([echo, echo])), false, 'twice the value');
  t.equal(addresses.verify(ADDRESS, Buffer.alloc(40)), false, 'the longest Echo option, all zeros');
});

t.test('a value is accepted in its own window and the next, refused two windows later', async (t) => {
  const { addresses, advanceMs } = validator();
  const echo = addresses.challenge(ADDRESS);
  advanceMs(WINDOW_MS - 1);
  t.equal(addresses.verify(ADDRESS, echo), true, 'the last millisecond of its own window');
  advanceMs(1);
  t.equal(addresses.verify(ADDRESS, echo), true, 'the first millisecond of the next window');
  t.notOk(addresses.challenge(ADDRESS).equals(echo), 'where a fresh challenge is another value');
  advanceMs(WINDOW_MS - 1);
  t.equal(addresses.verify(ADDRESS, echo), true, 'the last millisecond of the next window (2 minutes less 1 ms)');
  advanceMs(1);
  t.equal(addresses.verify(ADDRESS, echo), false, 'two windows later: refused');
  advanceMs(5 * WINDOW_MS);
  t.equal(addresses.verify(ADDRESS, echo), false, 'and later still');
});

t.test('a value stays refused when its window number comes round again (the MAC covers the whole number)', async (t) => {
  const { addresses, advanceMs } = validator();
  const echo = addresses.challenge(ADDRESS);
  advanceMs(256 * WINDOW_MS);
  t.equal(addresses.verify(ADDRESS, echo), false, '256 windows later');
});

t.test('a value from a later window (the clock went back) is refused', async (t) => {
  // Only the current window and the one before it count: a value "from the future" is not one of ours.
  const { addresses, advanceMs } = validator();
  advanceMs(WINDOW_MS);
  const echo = addresses.challenge(ADDRESS);
  advanceMs(-WINDOW_MS);
  t.equal(addresses.verify(ADDRESS, echo), false);
});

t.test('two processes (two keys) do not accept each other\'s values', async (t) => {
  const one = validator(Buffer.alloc(32, 0x11)).addresses;
  const two = validator(Buffer.alloc(32, 0x22)).addresses;
  const fromOne = one.challenge(ADDRESS);
  const fromTwo = two.challenge(ADDRESS);
  t.equal(one.verify(ADDRESS, fromOne), true, 'each accepts its own');
  t.equal(two.verify(ADDRESS, fromTwo), true);
  t.equal(two.verify(ADDRESS, fromOne), false, 'the second refuses the first\'s value');
  t.equal(one.verify(ADDRESS, fromTwo), false, 'and the other way round');
  // Without a key given, each validator draws its own, as each gateway process does.
  const now = () => 1_700_000_000_000;
  const a = createAddressValidator(now);
  const b = createAddressValidator(now);
  t.equal(a.verify(ADDRESS, a.challenge(ADDRESS)), true);
  t.equal(b.verify(ADDRESS, a.challenge(ADDRESS)), false, 'default keys: one process refuses another\'s value');
});

import t from 'tap';
import {
  EMPTY_REPLAY_STATE, MAX_SEQUENCE_NUMBER, REPLAY_WINDOW_SIZE, ReplayWindow, replayAccept, replayCheck, type ReplayState,
} from '../../gateway/src/wire/oscore/index.ts';

// The replay window (RFC 8613 section 7.4, the RFC 6347 section 4.1.2.6 window of 32): the
// highest number accepted and a 32-bit mask of which of it and the 31 below were. The expected
// states are worked out by hand from that representation.

t.test('the first message of a context is fresh, whatever its number', async (t) => {
  for (const n of [0, 1, 31, 32, 1000, 2 ** 32, MAX_SEQUENCE_NUMBER]) {
    t.equal(replayCheck(EMPTY_REPLAY_STATE, n), 'fresh', `${n}`);
    t.same(replayAccept(EMPTY_REPLAY_STATE, n), { highest: n, bits: 1 }, `${n}: highest, bit 0`);
  }
});

t.test('edges around the highest: equal, 31 below, 32 below, ahead by 1 and by 100', async (t) => {
  const window = new ReplayWindow();
  t.ok(window.accept(100), 'first: 100');
  t.equal(window.check(100), 'replay', 'equal to the highest');
  t.notOk(window.accept(100), 'accepting it again says no');
  t.same(window.state, { highest: 100, bits: 1 }, '...and changes nothing');
  t.equal(window.check(69), 'fresh', '31 below the highest: in the window, not seen');
  t.equal(window.check(68), 'replay', '32 below the highest: too old to tell, so a replay');
  t.equal(window.check(0), 'replay', 'far below');
  t.ok(window.accept(69), 'accept 31 below');
  t.same(window.state, { highest: 100, bits: (2 ** 31 + 1) }, 'bit 31 set: the top bit, as an unsigned number');
  t.equal(window.check(69), 'replay', 'and now it is a replay');
  t.ok(window.accept(101), 'ahead by 1');
  t.same(window.state, { highest: 101, bits: 3 }, 'shifted by one: bit 31 (69, now 32 below) fell out; 100 is bit 1');
  t.equal(window.check(69), 'replay', '69 is now out of the window: too old');
  t.equal(window.check(70), 'fresh', '70, 31 below 101, was never seen');
  t.ok(window.accept(201), 'ahead by 100');
  t.same(window.state, { highest: 201, bits: 1 }, 'the whole window moved on');
  t.equal(window.check(200), 'fresh', '200 was never seen');
  t.equal(window.check(170), 'fresh', '170, 31 below');
  t.equal(window.check(169), 'replay', '169, 32 below');
  t.equal(window.check(101), 'replay', 'the old highest, far below now');
});

t.test('out of order within the window: each accepted once', async (t) => {
  const window = new ReplayWindow();
  const order = [10, 5, 7, 6, 9, 8, 11, 0];
  for (const n of order) t.ok(window.accept(n), `accept ${n}`);
  for (const n of order) t.equal(window.check(n), 'replay', `${n} again`);
  for (const n of [1, 2, 3, 4]) t.equal(window.check(n), 'fresh', `${n} never came`);
  // highest 11: 11 10 9 8 7 6 5 -> bits 0-6; 0 -> bit 11
  t.same(window.state, { highest: 11, bits: 0b1111111 + 2 ** 11 });
});

t.test('numbers above 2^32: the arithmetic is on numbers, the bits only on the mask', async (t) => {
  const base = 2 ** 32 + 7;
  const window = new ReplayWindow();
  t.ok(window.accept(base));
  t.ok(window.accept(base + 31));
  t.same(window.state, { highest: base + 31, bits: 2 ** 31 + 1 }, 'base is bit 31');
  t.equal(window.check(base), 'replay', 'base seen');
  t.equal(window.check(base + 1), 'fresh');
  t.equal(window.check(base - 1), 'replay', '32 below');
  t.equal(window.check(7), 'replay', 'the number 2^32 below, which 32-bit arithmetic would take for base');
  t.equal(window.check(base + 31 + 2 ** 32), 'fresh', '2^32 ahead');
  t.ok(window.accept(base + 32), 'ahead by one past base + 31');
  t.same(window.state, { highest: base + 32, bits: 3 }, 'base fell out of the window');
  const top = new ReplayWindow({ highest: MAX_SEQUENCE_NUMBER - 1, bits: 1 });
  t.ok(top.accept(MAX_SEQUENCE_NUMBER), '2^40 - 1 is the last number');
  t.same(top.state, { highest: MAX_SEQUENCE_NUMBER, bits: 3 });
  t.equal(top.check(MAX_SEQUENCE_NUMBER - 31), 'fresh');
  t.equal(top.check(MAX_SEQUENCE_NUMBER - 32), 'replay');
});

t.test('pure functions: the state in, a new state out, the input untouched', async (t) => {
  const state: ReplayState = { highest: 50, bits: 1 };
  const next = replayAccept(state, 48);
  t.same(next, { highest: 50, bits: 0b101 });
  t.same(state, { highest: 50, bits: 1 }, 'untouched');
  t.equal(replayAccept(next!, 48), undefined, 'a replay gives no new state');
  t.equal(REPLAY_WINDOW_SIZE, 32);
  for (const bad of [-1, 1.5, 2 ** 40, Number.NaN]) t.throws(() => replayCheck(state, bad), TypeError, `${bad}`);
});

t.test('a long random run agrees with a set of every number seen', async (t) => {
  // A deterministic generator (no Math.random): a linear congruential sequence.
  let seed = 12_345;
  const next = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31);
  const window = new ReplayWindow();
  const seen = new Set<number>();
  let highest = -1;
  let disagreements = 0;
  for (let i = 0; i < 5000; i += 1) {
    const n = Math.max(0, highest + (Math.floor(next() / 2 ** 16) % 48) - 36); // -36 to +11 around the highest
    const expected = seen.has(n) || (highest >= 0 && highest - n >= 32) ? 'replay' : 'fresh';
    if (window.check(n) !== expected) disagreements += 1;
    if (window.accept(n) !== (expected === 'fresh')) disagreements += 1;
    if (expected === 'fresh') {
      seen.add(n);
      highest = Math.max(highest, n);
    }
  }
  t.equal(disagreements, 0, 'window and set agree on 5000 numbers');
  t.ok(seen.size > 1000 && seen.size < 4000, `both verdicts often: ${seen.size} fresh of 5000`);
});

import t from 'tap';
import {
  MAX_SEQUENCE_NUMBER, REPLAY_WINDOW_SIZE, emptyWindow, slideWindow, windowAt, type ReplayWindow,
} from '../../gateway/src/wire/oscore/index.ts';

// The replay window (RFC 8613 section 7.4, size 32): the highest number accepted and a 32-bit
// mask of which of the 32 below it were (bit i: highest - 1 - i). One implementation: the file
// store runs it, the Redis store's Lua mirrors it (its contract tests run the same cases). The
// expected states are worked out by hand from that representation.

/** Accepts each number in turn; undefined as soon as one is a replay. */
function accepted(window: ReplayWindow, ...numbers: number[]): ReplayWindow | undefined {
  let current: ReplayWindow | undefined = window;
  for (const n of numbers) current = current === undefined ? undefined : slideWindow(current, n);
  return current;
}

t.test('the first message of a new context is fresh, whatever its number', async (t) => {
  t.equal(REPLAY_WINDOW_SIZE, 32);
  for (const n of [0, 1, 31, 32, 1000, 2 ** 32, MAX_SEQUENCE_NUMBER]) {
    t.same(slideWindow(emptyWindow(), n), { highest: n, mask: 0 }, `${n}: the highest, nothing below`);
  }
});

t.test('edges around the highest: equal, 32 below, 33 below, ahead by 1, by 32 and by 100', async (t) => {
  const w100 = slideWindow(emptyWindow(), 100)!;
  t.equal(slideWindow(w100, 100), undefined, 'equal to the highest: a replay');
  t.same(slideWindow(w100, 68), { highest: 100, mask: 0x80000000 }, '32 below: in the window, bit 31');
  t.equal(slideWindow(w100, 67), undefined, '33 below: too old to tell, a replay');
  t.equal(slideWindow(w100, 0), undefined, 'far below');
  const with68 = slideWindow(w100, 68)!;
  t.equal(slideWindow(with68, 68), undefined, 'and 68 only once');
  t.same(slideWindow(with68, 101), { highest: 101, mask: 1 }, 'ahead by 1: 100 is bit 0, 68 (now 33 below) fell out');
  t.same(slideWindow(w100, 132), { highest: 132, mask: 0x80000000 }, 'ahead by 32: the old highest is bit 31');
  t.same(slideWindow(w100, 133), { highest: 133, mask: 0 }, 'ahead by 33: nothing of the old window stays');
  const w200 = slideWindow(w100, 200)!;
  t.same(w200, { highest: 200, mask: 0 }, 'ahead by 100: the window moved on');
  t.ok(slideWindow(w200, 199) !== undefined && slideWindow(w200, 168) !== undefined, '199 and 168 were never seen');
  t.equal(slideWindow(w200, 100), undefined, 'the old highest, far below now');
});

t.test('out of order within the window: each accepted once', async (t) => {
  const order = [10, 5, 7, 6, 9, 8, 11, 0];
  const window = accepted(emptyWindow(), ...order)!;
  // highest 11: 10 9 8 7 6 5 are bits 0-5; 0 is bit 10.
  t.same(window, { highest: 11, mask: 0b111111 + 2 ** 10 });
  for (const n of order) t.equal(slideWindow(window, n), undefined, `${n} again: a replay`);
  for (const n of [1, 2, 3, 4]) t.ok(slideWindow(window, n) !== undefined, `${n} never came: fresh`);
});

t.test('numbers above 2^32: the arithmetic is on numbers, the bits only on the mask', async (t) => {
  const base = 2 ** 32 + 7;
  const window = accepted(emptyWindow(), base, base + 32)!;
  t.same(window, { highest: base + 32, mask: 0x80000000 }, 'base is bit 31');
  t.equal(slideWindow(window, base), undefined, 'base seen');
  t.ok(slideWindow(window, base + 1) !== undefined, 'base + 1 never came');
  t.equal(slideWindow(window, base - 1), undefined, '33 below');
  t.equal(slideWindow(window, 7), undefined, 'the number 2^32 below, which 32-bit arithmetic would take for base');
  const top = accepted(emptyWindow(), MAX_SEQUENCE_NUMBER - 1, MAX_SEQUENCE_NUMBER)!;
  t.same(top, { highest: MAX_SEQUENCE_NUMBER, mask: 1 }, 'the last sequence number');
});

t.test('after an Echo recovery (Appendix B.1.2): the number received and everything below it count as seen', async (t) => {
  const recovered = windowAt(500);
  t.equal(slideWindow(recovered, 500), undefined, 'the recovering request itself');
  for (const n of [499, 480, 468, 0]) t.equal(slideWindow(recovered, n), undefined, `${n}: may have been accepted before the window was lost`);
  t.same(slideWindow(recovered, 501), { highest: 501, mask: 0xffffffff }, 'the next one is fresh');
});

import { conditions } from '../helpers/condition.ts';
import t, { type Test } from 'tap';
import { Retransmissions, type Settled, type TransmissionParameters } from '../../gateway/src/coap/retransmissions.ts';
import type { Peer } from '../../gateway/src/coap/peer.ts';

// RFC 7252 sections 4.2 and 5.2.2: a confirmable message (a separate response, a notification) is retransmitted after
// ACK_TIMEOUT x a random factor, doubling, MAX_RETRANSMIT times, until the device's ACK or RST.
// Small parameters and random() = 0 make the schedule 20, 40, 80, 160 ms, then give up at +320.
// Tests wait for the Nth send (a promise), never for a fixed time; a guard fails a test that hangs.

const SMALL: TransmissionParameters = { ackTimeoutMs: 20, ackRandomFactor: 1.5, maxRetransmit: 4 };
const PEER_A: Peer = { address: '192.0.2.1', port: 5683 };
const PEER_B: Peer = { address: '2001:db8::2', port: 40000 };

interface Sent { datagram: Buffer; peer: Peer; atMs: number }

function harness(t: Test, options: { maxOutstanding?: number; parameters?: TransmissionParameters; random?: () => number } = {}) {
  const sent: Sent[] = [];
  const gaveUp: ('timeout' | 'evicted')[] = [];
  let retransmissions = 0;
  const { notify, until } = conditions();
  const responses = new Retransmissions({
    send: (datagram, peer) => { sent.push({ datagram, peer, atMs: performance.now() }); notify(); },
    maxOutstanding: options.maxOutstanding ?? 10,
    parameters: options.parameters ?? SMALL,
    random: options.random ?? (() => 0),
    onRetransmit: () => { retransmissions += 1; },
    onGiveUp: (reason) => { gaveUp.push(reason); notify(); },
  });
  t.teardown(() => responses.clear());
  const sends = (datagram: Buffer) => sent.filter((s) => s.datagram.equals(datagram));
  const count = (datagram: Buffer) => sends(datagram).length;
  const sendsOf = (datagram: Buffer, n: number) => until(() => count(datagram) >= n, `${n} sends of ${datagram.toString()}`);
  return { responses, sent, gaveUp, retransmissions: () => retransmissions, until, sends, count, sendsOf };
}

const A = Buffer.from('separate A');
const B = Buffer.from('separate B');
const C = Buffer.from('separate C');

t.test('the first transmission is immediate, to the given peer', async (t) => {
  const h = harness(t);
  h.responses.send('a', PEER_A, A);
  t.equal(h.sent.length, 1, 'sent before send() returns');
  t.equal(h.sent[0]?.datagram, A);
  t.same(h.sent[0]?.peer, PEER_A);
  t.equal(h.responses.size, 1, 'outstanding until acknowledged');
  t.equal(h.retransmissions(), 0);
});

t.test('exactly MAX_RETRANSMIT retransmissions, doubling, then give up with timeout', async (t) => {
  const h = harness(t);
  h.responses.send('a', PEER_A, A);
  await h.until(() => h.gaveUp.length > 0, 'the give-up');
  t.same(h.gaveUp, ['timeout']);
  t.equal(h.count(A), 1 + SMALL.maxRetransmit, 'one transmission and four retransmissions');
  t.equal(h.retransmissions(), SMALL.maxRetransmit, 'each retransmission reported');
  t.ok(h.sends(A).every((s) => s.peer === PEER_A), 'every copy to the same peer');
  t.equal(h.responses.size, 0, 'forgotten after giving up');
  t.equal(h.responses.settle('a', 'ack'), false, 'a late ACK finds nothing to stop');
  // Lower bounds only (a timer never fires much early; it may fire late): 20, 40, 80, 160 ms.
  const at = h.sends(A).map((s) => s.atMs);
  const gaps = at.slice(1).map((ms, i) => ms - at[i]!);
  gaps.forEach((gapMs, i) => {
    const expectedMs = SMALL.ackTimeoutMs * 2 ** i;
    t.ok(gapMs >= expectedMs - 3, `retransmission ${i + 1} came ${gapMs.toFixed(1)} ms after the previous (>= ${expectedMs} ms)`);
  });
});

t.test('the random factor lengthens the first timeout: ACK_TIMEOUT x (1 + random x (factor - 1))', async (t) => {
  const h = harness(t, { parameters: { ackTimeoutMs: 40, ackRandomFactor: 1.5, maxRetransmit: 1 }, random: () => 1 });
  h.responses.send('a', PEER_A, A);
  await h.sendsOf(A, 2);
  const [first, second] = h.sends(A);
  t.ok(second!.atMs - first!.atMs >= 60 - 3, `first retransmission after ${(second!.atMs - first!.atMs).toFixed(1)} ms (>= 60 ms, not 40)`);
});

t.test('settle() stops further sends and returns true; false for a key not outstanding', async (t) => {
  const h = harness(t);
  h.responses.send('a', PEER_A, A);
  h.responses.send('b', PEER_B, B);
  t.equal(h.responses.settle('a', 'ack'), true, 'the ACK for a');
  t.equal(h.responses.settle('a', 'ack'), false, 'a second ACK for a finds nothing');
  t.equal(h.responses.settle('unknown', 'ack'), false, 'an ACK for something never sent');
  t.equal(h.responses.size, 1);
  // b was armed after a with the same timeout: by b's second retransmission, a's would have come.
  await h.sendsOf(B, 3);
  t.equal(h.count(A), 1, 'a was never retransmitted');
  t.ok(h.sends(B).every((s) => s.peer === PEER_B), 'b goes to its own peer');
});

t.test('settle() after some retransmissions stops the rest', async (t) => {
  const h = harness(t);
  h.responses.send('a', PEER_A, A);
  h.responses.send('b', PEER_B, B);
  await h.sendsOf(A, 2);
  t.equal(h.responses.settle('a', 'ack'), true);
  await h.sendsOf(B, 4);
  t.equal(h.count(A), 2, 'no retransmission of a after its ACK');
  t.same(h.gaveUp, [], 'a settled response is not a give-up');
});

t.test('full: the oldest outstanding response is evicted (onGiveUp evicted) and never sent again', async (t) => {
  const h = harness(t, { maxOutstanding: 2 });
  h.responses.send('a', PEER_A, A);
  h.responses.send('b', PEER_B, B);
  t.same(h.gaveUp, []);
  h.responses.send('c', PEER_A, C);
  t.same(h.gaveUp, ['evicted'], 'a pushed out');
  t.equal(h.responses.size, 2);
  t.equal(h.count(C), 1, 'c sent at once');
  await h.sendsOf(C, 2);
  t.equal(h.count(A), 1, 'a never retransmitted');
  t.ok(h.count(B) >= 2, 'b still retransmitted');
  t.equal(h.responses.settle('a', 'ack'), false, 'a is gone');
  t.equal(h.responses.settle('b', 'ack'), true, 'b was kept');
});

t.test('clear() stops every retransmission', async (t) => {
  const h = harness(t);
  h.responses.send('a', PEER_A, A);
  h.responses.send('b', PEER_B, B);
  h.responses.clear();
  t.equal(h.responses.size, 0);
  // A witness sent after the clear: by its first retransmission, a's and b's would have come.
  h.responses.send('c', PEER_A, C);
  await h.sendsOf(C, 2);
  t.equal(h.count(A), 1, 'a not retransmitted');
  t.equal(h.count(B), 1, 'b not retransmitted');
  t.equal(h.retransmissions(), 1, "only the witness's retransmission");
});

t.test('sending again under a key still outstanding replaces it: one retransmission schedule, not two', async (t) => {
  const h = harness(t);
  const first = Buffer.from('first copy');
  const second = Buffer.from('second copy');
  h.responses.send('k', PEER_A, first);
  h.responses.send('k', PEER_A, second);
  t.equal(h.responses.size, 1);
  h.responses.send('w', PEER_B, B);
  await h.sendsOf(B, 2);
  t.equal(h.count(first), 1, 'the replaced datagram is not retransmitted');
  t.equal(h.count(second), 2, 'the new one: sent once and retransmitted once by the time the witness was');
});

t.test('each send hears how it ended: ack, reset, timeout, evicted or cleared', async (t) => {
  const h = harness(t, { maxOutstanding: 2 });
  const ended = new Map<string, Settled>();
  const send = (key: string, datagram: Buffer) => h.responses.send(key, PEER_A, datagram, (how) => { ended.set(key, how); });
  send('acked', A);
  send('reset', B);
  t.equal(h.responses.settle('acked', 'ack'), true);
  t.equal(h.responses.settle('reset', 'reset'), true);
  send('timeout', C);
  await h.until(() => h.gaveUp.includes('timeout'), 'the timeout');
  send('evicted', A);
  send('kept', B);
  send('newest', C);
  send('again', A);
  h.responses.clear();
  t.same(Object.fromEntries(ended), {
    acked: 'ack', reset: 'reset', timeout: 'timeout', evicted: 'evicted', kept: 'evicted', newest: 'cleared', again: 'cleared',
  }, 'one outcome per send, the full table pushing out the oldest');
});

import t from 'tap';
import {
  PEER_A, PEER_B, harness, option, request,
} from '../helpers/endpoint-harness.ts';

// The drain layer: once the gateway is stopping, new requests get 5.03 with Max-Age while those in
// flight finish.

t.test('drain(): new requests get 5.03 with Max-Age; it resolves once the request in flight is answered', async (t) => {
  const h = harness(t);
  const release = h.handler.hold();
  h.endpoint.handle(request({ token: 'f1' }), PEER_A);
  let drained = false;
  const draining = h.endpoint.drain().then(() => { drained = true; });
  const busy = await h.ask(request({ path: ['some', 'longer', 'path'], token: 'f2' }), PEER_B);
  t.equal(busy.packet.code, '5.03');
  t.ok(option(busy, 'Max-Age') !== undefined, 'with Max-Age');
  t.equal(h.handler.handled.length, 1, 'the new request did not reach the handler');
  t.equal(drained, false, 'not drained while a request is in flight');
  release[0]!({ code: '2.05', payload: Buffer.from('last') });
  await draining;
  t.equal(h.endpoint.inFlight(), 0);
  const last = h.sent.find((s) => s.packet.token.toString('hex') === 'f1');
  t.equal(last?.packet.code, '2.05', 'the request in flight was answered');
});


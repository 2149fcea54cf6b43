import t from 'tap';
import { Decoder } from 'cbor-x';
import { startHarness } from '../helpers/harness.ts';
import type { BackendHandler } from '../helpers/test-backend.ts';
import { holdingHandler, okHandler } from '../helpers/bridge-fixtures.ts';
import { RawCoapClient, isAnswerTo, isEmptyAck, loginToken, rawRequest } from '../helpers/bridge-raw-coap.ts';

// RFC 7252 section 4.5: a retransmitted confirmable request (same endpoint, same message ID) is
// answered again but processed once: never forwarded to the backend twice, also when the answer
// is a separate response (node-coap 1.5.0's server forwards every copy then).

const cbor = new Decoder({ mapsAsObjects: false, useRecords: false });
const configGet = (accessToken: string, messageId: number, token: string, confirmable = true) =>
  rawRequest({ path: ['config'], accessToken, messageId, token: Buffer.from(token, 'hex'), confirmable });

const intervalHandler: BackendHandler = (_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ interval: 60 }));
};

/**
 * A fresh request from the same socket, sent after the duplicates: once its answer is back, any
 * duplicate that had slipped through to the backend was forwarded before it.
 */
async function barrier(client: RawCoapClient, accessToken: string): Promise<void> {
  await client.send(configGet(accessToken, 0x7fff, 'bbbb'));
  await client.next(isAnswerTo(Buffer.from('bbbb', 'hex')), 'answer to the barrier request');
}

t.test('CON retransmitted while the backend is slow: forwarded once, one empty ACK per copy, one separate response', async (t) => {
  const h = await startHarness(t, { config: { piggybackReplyMs: 40 } });
  const accessToken = await loginToken(h, 'sensor-1');
  const client = await RawCoapClient.open(t, h.port);
  const slow = holdingHandler(intervalHandler);
  h.backend.setHandler(slow.handler);
  const datagram = configGet(accessToken, 0x1234, 'a1a2a3a4');

  await client.send(datagram);
  await h.backend.waitForRequests(1);
  await client.next(isEmptyAck(0x1234), 'empty ACK of the first copy');
  // Each copy is acknowledged again (RFC 7252 section 4.5), which also proves it reached the gateway.
  for (const copy of [2, 3]) {
    await client.send(datagram);
    await client.next(isEmptyAck(0x1234), `empty ACK of copy ${copy}`);
  }
  slow.release();
  const separate = await client.next(isAnswerTo(Buffer.from('a1a2a3a4', 'hex')), 'the separate response');
  t.equal(separate.code, '2.05');
  t.ok(separate.confirmable, 'RFC 7252 section 5.2.2: the separate response is confirmable');
  t.not(separate.messageId, 0x1234, 'with a message ID of its own');
  t.same(cbor.decode(separate.payload), new Map([['interval', 60]]));
  await client.ack(separate);

  h.backend.setHandler(okHandler);
  await barrier(client, accessToken);
  t.equal(h.backend.requests.length, 2, 'the backend saw the request once, plus the barrier');
  t.equal(client.received.filter(isAnswerTo(Buffer.from('a1a2a3a4', 'hex'))).length, 1, 'exactly one response for three copies');
  await h.assertStillServes(t);
});

t.test('CON retransmitted after a piggybacked answer gets the same answer; the backend still saw one request', async (t) => {
  const h = await startHarness(t, { config: { piggybackReplyMs: 2000 } });
  const accessToken = await loginToken(h, 'sensor-1');
  const client = await RawCoapClient.open(t, h.port);
  let served = 0;
  h.backend.setHandler((_req, res) => {
    served += 1;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ served }));
  });
  const datagram = configGet(accessToken, 0x2345, 'c1c2');

  await client.send(datagram);
  const first = await client.next(isAnswerTo(Buffer.from('c1c2', 'hex')), 'the piggybacked answer');
  t.ok(first.ack, 'piggybacked in the ACK');
  t.equal(first.messageId, 0x2345);
  t.equal(first.code, '2.05');
  for (const copy of [2, 3]) {
    await client.send(datagram);
    const again = await client.next(isAnswerTo(Buffer.from('c1c2', 'hex')), `answer to copy ${copy}`);
    t.equal(again.messageId, 0x2345, `copy ${copy}: the same ACK`);
    t.equal(again.code, '2.05');
    t.same(again.payload, first.payload, `copy ${copy}: the stored answer, not a new one`);
  }
  t.same(cbor.decode(first.payload), new Map([['served', 1]]));
  await barrier(client, accessToken);
  t.equal(h.backend.requests.length, 2, 'the backend saw the request once, plus the barrier');
  await h.assertStillServes(t);
});

t.test('a retransmission after a separate response gets the stored answer, not a second backend call', async (t) => {
  const h = await startHarness(t, { config: { piggybackReplyMs: 20 } });
  const accessToken = await loginToken(h, 'sensor-1');
  const client = await RawCoapClient.open(t, h.port);
  const slow = holdingHandler(intervalHandler);
  h.backend.setHandler(slow.handler);
  const datagram = configGet(accessToken, 0x3456, 'd1d2');

  await client.send(datagram);
  await client.next(isEmptyAck(0x3456), 'empty ACK');
  slow.release();
  const separate = await client.next(isAnswerTo(Buffer.from('d1d2', 'hex')), 'the separate response');
  await client.ack(separate);
  // The device missed the empty ACK and retransmits: it must not cause a second backend call.
  await client.send(datagram);
  const late = await client.next((p) => p.messageId === 0x3456, 'ACK of the late copy');
  t.ok(late.ack, 'acknowledged');
  if (late.code !== '0.00') t.same(late.payload, separate.payload, 'if it carries an answer, it is the stored one');
  await barrier(client, accessToken);
  t.equal(h.backend.requests.length, 2, 'the backend saw the request once, plus the barrier');
  await h.assertStillServes(t);
});

t.test('a duplicated NON request is processed once', async (t) => {
  const h = await startHarness(t, { config: { piggybackReplyMs: 20 } });
  const accessToken = await loginToken(h, 'sensor-1');
  const client = await RawCoapClient.open(t, h.port);
  const slow = holdingHandler(intervalHandler);
  h.backend.setHandler(slow.handler);
  const datagram = configGet(accessToken, 0x4567, 'e1e2', false);

  await client.send(datagram);
  await h.backend.waitForRequests(1);
  await client.send(datagram);
  slow.release();
  const answer = await client.next(isAnswerTo(Buffer.from('e1e2', 'hex')), 'the NON answer');
  t.equal(answer.code, '2.05');
  t.notOk(answer.confirmable, 'a NON request gets a NON answer (RFC 7252 section 5.2.3)');
  await barrier(client, accessToken);
  t.equal(h.backend.requests.length, 2, 'the backend saw the request once, plus the barrier');
  await h.assertStillServes(t);
});

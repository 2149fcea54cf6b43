import t from 'tap';
import { generate } from 'coap-packet';
import { BridgeError, RequestError } from '../../gateway/src/errors.ts';
import { ErrorKey, WireError } from '../../gateway/src/wire/index.ts';
import {
  errorBody, freshMessageId, harness, request,
} from '../helpers/endpoint-harness.ts';

// The request layer, at the top of the stack: the pipeline's refusals (and anything it throws)
// become small CoAP errors, never larger than the request (RFC 7252 section 11.3), and the
// endpoint keeps serving.

t.test('a handler that throws a non-GatewayError gets 5.00, and the endpoint keeps working', async (t) => {
  const h = harness(t);
  h.handler.handleImpl = () => { throw new TypeError('cannot read properties of undefined'); };
  const failed = await h.ask(request({ path: ['sensors', 'temp'], token: 'a0a0a0a0' }));
  t.equal(failed.packet.code, '5.00');
  t.equal(failed.packet.ack, true, 'still a proper piggybacked answer');
  t.same(errorBody(failed), new Map([[ErrorKey.code, WireError.internal], [ErrorKey.serverTimeSec, Math.floor(h.nowMs() / 1000)]]),
    'the tiny CBOR error body');
  t.notMatch(failed.packet.payload.toString('latin1'), /cannot read/, 'the reason stays in the log');
  h.handler.handleImpl = () => Promise.reject('not even an Error');
  t.equal((await h.ask(request())).packet.code, '5.00', 'a rejected non-Error too');
  h.handler.handleImpl = () => ({ code: '2.05', payload: Buffer.from('fine') });
  const next = await h.ask(request());
  t.equal(next.packet.code, '2.05', 'the next request is served');
  t.equal(next.packet.payload.toString(), 'fine');
});


t.test('an error answer is never larger than the request (RFC 7252 section 11.3)', async (t) => {
  const h = harness(t);
  h.handler.handleImpl = () => { throw new RequestError('GW_ERR_NOT_FOUND', 'no route'); };
  const tiny = Buffer.from('40014321', 'hex'); // CON GET, no token, no options: 4 bytes
  const reply = await h.ask(tiny);
  t.equal(reply.packet.code, '4.04');
  t.equal(reply.packet.payload.length, 0, 'no room for the error body');
  t.ok(reply.datagram.length <= tiny.length, `${reply.datagram.length} <= ${tiny.length} bytes`);
  const withToken = request({ path: [], token: '0102030405060708' });
  const tokenReply = await h.ask(withToken);
  t.ok(tokenReply.datagram.length <= withToken.length, `with an 8-byte token: ${tokenReply.datagram.length} <= ${withToken.length} bytes`);
  const roomy = request({ path: ['a-longer-path-with-room'], token: '01' });
  const roomyReply = await h.ask(roomy);
  t.equal(errorBody(roomyReply).get(ErrorKey.code), WireError.notFound, 'a request with room gets the body');
  t.ok(roomyReply.datagram.length <= roomy.length, `${roomyReply.datagram.length} <= ${roomy.length} bytes`);
  const qBlock = request({ path: [], token: '', extra: [[19, Buffer.alloc(0)]] });
  const qBlockReply = await h.ask(qBlock);
  t.equal(qBlockReply.packet.code, '4.02', 'unimplemented critical option');
  t.ok(qBlockReply.datagram.length <= qBlock.length, `4.02: ${qBlockReply.datagram.length} <= ${qBlock.length} bytes`);
});

t.test('an error answer with Max-Age or Size1 is never larger than a tiny request either', async (t) => {
  const h = harness(t);
  const tiny = () => generate({ code: 'GET', messageId: freshMessageId(), confirmable: true });
  h.handler.handleImpl = () => { throw new BridgeError('GW_ERR_BUSY', 'overloaded', { maxAgeSec: 5 }); };
  const busy = await h.ask(tiny());
  t.equal(busy.packet.code, '5.03');
  t.ok(busy.datagram.length <= 4, `5.03 with Max-Age to a 4-byte request: ${busy.datagram.length} bytes (${busy.datagram.toString('hex')})`);
  h.handler.handleImpl = () => { throw new RequestError('GW_ERR_PAYLOAD_TOO_LARGE', 'too big', { size1Bytes: 16_384 }); };
  const tooLarge = await h.ask(tiny());
  t.equal(tooLarge.packet.code, '4.13');
  t.ok(tooLarge.datagram.length <= 4, `4.13 with Size1 to a 4-byte request: ${tooLarge.datagram.length} bytes (${tooLarge.datagram.toString('hex')})`);
});


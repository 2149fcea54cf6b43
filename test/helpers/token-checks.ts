import type { Test } from 'tap';
import type { CoapAnswer, DeviceClient, SendOptions } from '../../device-sim/src/device-client.ts';
import { ErrorKey, WireError } from '../../gateway/src/wire/index.ts';
import type { Harness } from './harness.ts';

export interface Refusal {
  /** '4.01' or '4.03'. */
  code: string;
  /** WireError code expected as key 0 of the error body. */
  wire: number;
}

/**
 * Sends a request that must be refused and checks everything a refusal promises: the CoAP code,
 * the tiny CBOR error body `{0: wire code, 4: server time}` with the gateway's (injected) time,
 * that the backend got nothing, and that the gateway still serves a good request afterwards.
 */
export async function expectRefused(t: Test, h: Harness, device: DeviceClient, request: SendOptions, expected: Refusal,
  what: string): Promise<CoapAnswer> {
  const backendBefore = h.backend.requests.length;
  const answer = await device.send(request);
  t.equal(answer.code, expected.code, `${what}: CoAP ${expected.code}`);
  const body = answer.body instanceof Map ? answer.body as Map<number, unknown> : undefined;
  t.ok(body, `${what}: CBOR error body`);
  t.equal(body?.get(ErrorKey.code), expected.wire, `${what}: wire error ${expected.wire}`);
  const serverTimeSec = body?.get(ErrorKey.serverTimeSec);
  t.ok(typeof serverTimeSec === 'number' && Math.abs(serverTimeSec - h.clock.nowMs() / 1000) < 5,
    `${what}: error body carries the gateway's time (${String(serverTimeSec)})`);
  t.same([...(body?.keys() ?? [])].sort(), [ErrorKey.code, ErrorKey.serverTimeSec], `${what}: only keys 0 and 4`);
  t.equal(h.backend.requests.length, backendBefore, `${what}: never reached the backend`);
  await h.assertStillServes(t);
  return answer;
}

/** Key 0 of a CBOR error body, the wire error code; undefined when the body is not a map. */
export const wireCodeOf = (body: unknown): unknown =>
  (body instanceof Map ? (body as Map<number, unknown>).get(ErrorKey.code) : undefined);

/** The answer to a token that is not, or is no longer, good: 4.01 with wire error tokenInvalid. */
export function expectTokenInvalid(t: Test, answer: { code: string; body: unknown }, what: string): void {
  t.equal(answer.code, '4.01', `${what}: 4.01`);
  t.equal(wireCodeOf(answer.body), WireError.tokenInvalid, `${what}: tokenInvalid`);
}

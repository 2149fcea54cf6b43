import t, { type Test } from 'tap';
import { decodeJwt } from 'jose';
import type { StoreChange } from '../../gateway/src/store/index.ts';
import { WireError } from '../../gateway/src/wire/index.ts';
import { runCli } from '../helpers/cli-run.ts';
import { metricValue } from '../helpers/coap-wire.ts';
import { startHarness, type Harness } from '../helpers/harness.ts';
import { expectTokenInvalid, wireCodeOf } from '../helpers/token-checks.ts';

// An operator's revocations, made with the real CLI in its own process against the running
// gateway's store: each reaches the gateway through the store's change feed and holds from the
// next request, cached tokens included.

/** A running gateway applies a revocation within this long: the wait fails past it. */
const APPLY_WITHIN_MS = 1000;

const config = (token: string) => ({ method: 'GET' as const, path: '/config', token });

/** Resolves when the gateway's store reports a change that `match` accepts; rejects past APPLY_WITHIN_MS from `from()`. */
function changeHeard(h: Harness, match: (change: StoreChange) => boolean): { heard: Promise<void>; startClock: () => void } {
  let timer: NodeJS.Timeout | undefined;
  let unsubscribe = () => undefined as void;
  let reject: (err: Error) => void = () => undefined;
  const heard = new Promise<void>((resolve, fail) => {
    reject = fail;
    unsubscribe = h.gateway.store.subscribe((change) => {
      if (!match(change)) return;
      clearTimeout(timer);
      unsubscribe();
      resolve();
    });
  });
  return {
    heard,
    startClock: () => {
      timer = setTimeout(() => { unsubscribe(); reject(new Error(`the change did not reach the gateway within ${APPLY_WITHIN_MS} ms`)); }, APPLY_WITHIN_MS);
    },
  };
}

async function cli(t: Test, args: string[]): Promise<string> {
  const result = await runCli(args);
  t.equal(result.code, 0, `gateway ${args.slice(0, 3).join(' ')}: exit 0${result.code === 0 ? '' : ` (${result.stderr.trim()})`}`);
  return result.stderr;
}

t.test('devices revoke: the device\'s cached token is refused as soon as the change arrives (within 1 s); it may log in again', async (t) => {
  const h = await startHarness(t);
  const secret = await h.provision('sensor-1');
  const otherSecret = await h.provision('sensor-2');
  const device = await h.device();
  const { tokens } = await device.login('sensor-1', secret);
  const other = (await device.login('sensor-2', otherSecret)).tokens!;
  t.equal((await device.send(config(tokens!.accessToken))).code, '2.05', 'the token works (and is cached)');
  t.equal((await device.send(config(tokens!.accessToken))).code, '2.05', 'from the cache');

  const change = changeHeard(h, (c) => c.kind === 'device' && c.id === 'sensor-1');
  const stderr = await cli(t, ['devices', 'revoke', 'sensor-1', '--state', h.stateDir]);
  t.match(stderr, /sensor-1/, 'the CLI says which device');
  change.startClock();
  await change.heard;
  expectTokenInvalid(t, await device.send(config(tokens!.accessToken)), 'the cached token, from the next request on');
  expectTokenInvalid(t, (await device.refresh(tokens!.refreshToken)).answer, 'its refresh token');
  t.equal((await device.send(config(other.accessToken))).code, '2.05', 'another device is not touched');
  const again = await device.login('sensor-1', secret);
  t.equal(again.answer.code, '2.01', 'the device logs in again');
  t.equal((await device.send(config(again.tokens!.accessToken))).code, '2.05', 'and its new token works');
  await h.assertStillServes(t);
});

t.test('tokens revoke: one jti refused, cached or not, while the device\'s other tokens work; the entry ends with the token', async (t) => {
  const h = await startHarness(t);
  const secret = await h.provision('sensor-1');
  const device = await h.device();
  const first = (await device.login('sensor-1', secret)).tokens!;
  const second = (await device.login('sensor-1', secret)).tokens!;
  t.equal((await device.send(config(first.accessToken))).code, '2.05', 'the first token works (and is cached)');
  const { jti } = decodeJwt(first.accessToken);

  const change = changeHeard(h, (c) => c.kind === 'revocation' && c.revocation.kind === 'token' && c.revocation.jti === jti);
  // A jti is base64url: one may start with '-', so it goes after '--'.
  await cli(t, ['tokens', 'revoke', '--state', h.stateDir, '--', jti!]);
  change.startClock();
  await change.heard;
  expectTokenInvalid(t, await device.send(config(first.accessToken)), 'the revoked token');
  t.equal((await device.send(config(second.accessToken))).code, '2.05', 'the device\'s other token works');
  const refreshed = await device.refresh(first.refreshToken);
  t.equal(refreshed.answer.code, '2.01', 'and the revoked token\'s refresh token still refreshes (revoke the device to stop that)');
  t.equal(await metricValue(h, 'coap_gateway_revocations_total', { kind: 'token' }), 1, 'counted');
  const listed = await h.gateway.store.revocations.list(Math.floor(h.clock.nowMs() / 1000));
  const entry = listed.find((r) => r.kind === 'token' && r.jti === jti);
  t.ok(entry !== undefined && entry.untilSec <= Math.floor(h.clock.nowMs() / 1000) + 3600 + 30 + 5,
    'the entry lasts a token lifetime and the leeway, no longer');
  t.notOk((await h.gateway.store.revocations.list(entry!.untilSec)).some((r) => r.kind === 'token' && r.jti === jti),
    'and is gone after: the list stays bounded');
  const bad = await runCli(['tokens', 'revoke', 'not a jti!', '--state', h.stateDir]);
  t.not(bad.code, 0, 'a malformed jti: an error exit');
  t.match(bad.stderr, /jti/, 'naming the jti');
  await h.assertStillServes(t);
});

t.test('devices disable: tokens refused and logins too, until enable', async (t) => {
  const h = await startHarness(t);
  const secret = await h.provision('sensor-1');
  const device = await h.device();
  const { tokens } = await device.login('sensor-1', secret);
  t.equal((await device.send(config(tokens!.accessToken))).code, '2.05', 'the token works (and is cached)');

  const disabled = changeHeard(h, (c) => c.kind === 'device' && c.id === 'sensor-1');
  await cli(t, ['devices', 'disable', 'sensor-1', '--state', h.stateDir]);
  disabled.startClock();
  await disabled.heard;
  expectTokenInvalid(t, await device.send(config(tokens!.accessToken)), 'the cached token of a disabled device');
  const login = await device.login('sensor-1', secret);
  t.equal(login.answer.code, '4.01', 'a disabled device cannot log in');
  t.equal(wireCodeOf(login.answer.body), WireError.badCredentials);
  expectTokenInvalid(t, (await device.refresh(tokens!.refreshToken)).answer, 'nor refresh');

  const enabled = changeHeard(h, (c) => c.kind === 'device' && c.id === 'sensor-1');
  await cli(t, ['devices', 'enable', 'sensor-1', '--state', h.stateDir]);
  enabled.startClock();
  await enabled.heard;
  const back = await device.login('sensor-1', secret);
  t.equal(back.answer.code, '2.01', 'enabled: it logs in');
  t.equal((await device.send(config(back.tokens!.accessToken))).code, '2.05', 'and is served');
  await h.assertStillServes(t);
});

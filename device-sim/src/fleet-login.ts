import type { TokenFormatName } from '../../gateway/src/wire/index.ts';
import { tokenFormatOf, type AccessToken, type AuthResult, type CoapAnswer, type TokenRequest, type Tokens } from './device-client.ts';
import type { DeviceSession } from './device-session.ts';
import type { ExchangeRecorder } from './exchange-recorder.ts';
import type { ResolvedFleetOptions } from './fleet-options.ts';

/** What a device presents: its credentials (the scenario's login kind), its refresh token, or the one it spent. */
export type AuthKind = 'login' | 'refresh' | 'refresh-spent';

/** One login or refresh of one device, counted under `recorder`; undefined when it got no answer. */
export type Authenticate = (s: DeviceSession, kind: AuthKind, recorder: ExchangeRecorder) => Promise<CoapAnswer | undefined>;

/**
 * Logins as the scenario's devices make them: with a secret, with an assertion signed by the
 * device's key (`iat` by its estimate of the gateway's clock), or, for a device without a clock,
 * a nonce first (`POST /auth/nonce`) and an assertion naming it. Nonce logins go at most
 * `noncesInFlight` at a time, and a nonce login counts as one login (its latency and bytes
 * include the nonce's round trips). Every login and refresh asks for `o.tokenFormat` when set;
 * the tokens issued are counted by format in `tokensIssued`.
 */
export function createAuthenticate(o: ResolvedFleetOptions, errorSamples: Set<string>,
  tokensIssued: Record<TokenFormatName, number> = { jwt: 0, cwt: 0 }): Authenticate {
  const nonceSlot = createLimit(o.noncesInFlight);
  // Always a TokenRequest (a device takes a CWT as well as a JWT); key 6 only with --token-format.
  const request: TokenRequest = { tokenFormat: o.tokenFormat };
  const loginOnce = async (s: DeviceSession): Promise<AuthResult<AccessToken>> => {
    const client = s.client!;
    switch (o.scenario.login) {
      case 'secret':
        return client.login(s.id, s.secret!, request);
      case 'assertion':
        return client.loginWithAssertion(s.id, s.privateJwk!, { audience: o.audience, clock: { nowMs: () => s.clock.serverNowMs() } }, request);
      case 'nonce-assertion': {
        const { answer, nonce } = await client.nonce();
        if (nonce !== undefined) return client.loginWithAssertion(s.id, s.privateJwk!, { audience: o.audience, nonce }, request);
        if (answer.code === '2.05') errorSamples.add('a nonce answered 2.05 without {7: nonce bytes, 4: server time} of the wire contract');
        // The nonce's refusal (4.29, 5.03, ...) is the login's answer.
        return { answer };
      }
    }
  };

  const measured = async (s: DeviceSession, kind: AuthKind, recorder: ExchangeRecorder): Promise<CoapAnswer | undefined> => {
    const client = s.client!;
    const presented = kind === 'refresh' ? s.refreshToken : kind === 'refresh-spent' ? s.spentRefreshToken : undefined;
    if (kind !== 'login' && presented === undefined) {
      recorder.sent += 1;
      recorder.failure(new Error(`${kind}: the device holds no ${kind === 'refresh' ? '' : 'spent '}refresh token (an earlier step failed)`));
      return undefined;
    }
    let tokens: Tokens<AccessToken> | undefined;
    const answer = await recorder.measure(client, async () => {
      const result = kind === 'login' ? await loginOnce(s) : await client.refresh(presented!, request);
      tokens = result.tokens;
      return result.answer;
    });
    if (answer === undefined) return undefined;
    if (tokens !== undefined) {
      s.useTokens(tokens, kind === 'refresh');
      tokensIssued[tokenFormatOf(tokens.accessToken)] += 1;
    }
    // A refused spent token says nothing about the device's current one: keep that.
    else s.noteRefusedLogin(answer, kind === 'refresh');
    if (answer.code === '2.01' && tokens === undefined) errorSamples.add('a login answered 2.01 without the tokens {1 (text or bytes), 2, 3 (bytes), 4} of the wire contract');
    return answer;
  };

  return (s, kind, recorder) => (kind === 'login' && o.scenario.login === 'nonce-assertion'
    ? nonceSlot(() => measured(s, kind, recorder))
    : measured(s, kind, recorder));
}

/** Runs tasks at most `max` at a time, in the order they came. */
function createLimit(max: number): <T>(task: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async (task) => {
    if (active < max) active += 1;
    else await new Promise<void>((resolve) => { waiting.push(resolve); });
    try {
      return await task();
    } finally {
      // The slot passes straight to the next waiter, or is freed.
      const next = waiting.shift();
      if (next !== undefined) next();
      else active -= 1;
    }
  };
}

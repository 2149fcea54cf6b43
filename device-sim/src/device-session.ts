import { performance } from 'node:perf_hooks';
import type { DevicePrivateJwk } from './device-assertion.ts';
import type { AccessToken, CoapAnswer, DeviceClient, Tokens } from './device-client.ts';
import type { DeviceCredentials } from './devices-file.ts';
import { DeviceClock } from './device-clock.ts';
import { serverTimeOf } from './exchange-recorder.ts';
import type { ResolvedFleetOptions } from './fleet-options.ts';
import type { DeviceOscoreContext } from './oscore-context.ts';

/** RFC 7252 section 5.10.5: Max-Age defaults to 60 s when a 4.29 or 5.03 does not carry it. */
export const DEFAULT_MAX_AGE_SEC = 60;
/** Renew when a quarter of the token's life is left, and never later than 1 s before it expires. */
const RENEW_AT_REMAINING_FRACTION = 0.25;
const RENEW_MIN_MARGIN_MS = 1000;
/** expired scenario: wait this much past exp + leeway; covers the 0.5 s error of the clock estimate. */
const EXPIRED_MARGIN_MS = 2000;

/** One simulated device's state: its socket, its token and its idea of the gateway's clock. */
export class DeviceSession {
  readonly index: number;
  readonly id: string;
  readonly secret: Buffer | undefined;
  readonly privateJwk: DevicePrivateJwk | undefined;
  /** The device's OSCORE context (with its sequence number), when it has one. */
  readonly oscore: DeviceOscoreContext | undefined;
  readonly clock: DeviceClock;
  client: DeviceClient | undefined;
  /** A JWT (text) or a CWT (bytes), as the gateway issued it. */
  accessToken: AccessToken | undefined;
  refreshToken: Uint8Array | undefined;
  /** The refresh token this device used last (refresh-reuse scenario: presented again). */
  spentRefreshToken: Uint8Array | undefined;
  loggedIn = false;
  /** By the device's estimate of the gateway's clock. */
  renewAtServerMs = Infinity;
  /** When the gateway must refuse the token (exp + leeway), by the same estimate. */
  expiredAtServerMs = 0;
  /** Monotonic time until which the device stays quiet (4.29 / 5.03 Max-Age). */
  backoffUntilMs = 0;
  #stale = false;
  #seq = 0;
  readonly #leewayMs: number;

  constructor(index: number, creds: DeviceCredentials, o: ResolvedFleetOptions) {
    this.index = index;
    this.id = creds.id;
    this.secret = creds.secret;
    this.privateJwk = creds.privateJwk;
    this.oscore = creds.oscore;
    // skew scenario: even devices run ahead, odd ones behind. A device without a clock starts
    // at the epoch, as one without a battery-backed clock does, until the gateway tells it the time.
    const skewMs = !o.scenario.hasClock ? -o.clock.nowMs() : o.skewSec * 1000 * (index % 2 === 0 ? 1 : -1);
    this.clock = new DeviceClock(o.clock, skewMs, o.clockCorrection);
    this.#leewayMs = o.leewaySec * 1000;
  }

  /**
   * Takes new tokens. The device sets its clock by the login's server time (key 4) and times its
   * renewal by the gateway's clock, not its own: a device whose clock is off still renews in time.
   */
  useTokens(tokens: Tokens<AccessToken>, wasRefresh = false): void {
    this.clock.learn(tokens.serverTimeSec);
    this.accessToken = tokens.accessToken;
    if (wasRefresh) this.spentRefreshToken = this.refreshToken;
    this.refreshToken = tokens.refreshToken;
    this.loggedIn = true;
    this.#stale = false;
    // iat is the server time the gateway sent, so exp = server time + expires_in exactly.
    const expMs = (tokens.serverTimeSec + tokens.expiresInSec) * 1000;
    this.renewAtServerMs = expMs - Math.max(tokens.expiresInSec * 1000 * RENEW_AT_REMAINING_FRACTION, RENEW_MIN_MARGIN_MS);
    this.expiredAtServerMs = expMs + this.#leewayMs + EXPIRED_MARGIN_MS;
  }

  /** A login or refresh was refused: learn the server time it carries; a refused refresh token is dropped. */
  noteRefusedLogin(answer: CoapAnswer, wasRefresh: boolean): void {
    const serverTimeSec = serverTimeOf(answer);
    if (serverTimeSec !== undefined) this.clock.learn(serverTimeSec);
    if (wasRefresh) this.refreshToken = undefined;
    if (answer.code === '4.29' || answer.code === '5.03') this.backOff((answer.maxAgeSec ?? DEFAULT_MAX_AGE_SEC) * 1000);
  }

  markTokenStale(): void {
    this.#stale = true;
  }

  dueForRefresh(): boolean {
    return this.accessToken === undefined || this.#stale || this.clock.serverNowMs() >= this.renewAtServerMs;
  }

  backOff(ms: number): void {
    this.backoffUntilMs = Math.max(this.backoffUntilMs, performance.now() + ms);
  }

  /** A reading as a CBOR map with text keys (they become the backend's JSON keys). */
  nextReading(): Map<string, number> {
    this.#seq += 1;
    const celsius = Math.round((18 + (this.index % 12) + (this.#seq % 20) / 10) * 10) / 10;
    return new Map([['celsius', celsius], ['seq', this.#seq]]);
  }
}

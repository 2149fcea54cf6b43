import { isIPv6 } from 'node:net';
import { Agent, type IncomingMessage, type OutgoingMessage } from 'coap';
import {
  ACCESS_TOKEN_OPTION, AuthRequestKey, AuthResponseKey, ContentFormat, Paths, TokenFormat, decodeCbor, encodeCbor,
  type TokenFormatName,
} from '../../gateway/src/wire/index.ts';
import { CountingSocket, type Traffic } from './counting-socket.ts';
import {
  ASSERTION_LIFETIME_SEC, AssertionSigner, NONCE_ASSERTION_LIFETIME_SEC, type DevicePrivateJwk,
} from './device-assertion.ts';

/** RFC 9175 section 2.2.1: the Echo option (elective, safe to forward). */
export const ECHO_OPTION = 252;

export interface CoapAnswer {
  code: string;
  payload: Buffer;
  contentFormat: number | string | undefined;
  maxAgeSec: number | undefined;
  /** The payload decoded as CBOR when it is CBOR, else undefined. */
  body: unknown;
  /** An Echo option value (RFC 9175): the gateway wants it repeated to prove this device's address. */
  echo?: Buffer;
}

export interface SendOptions {
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  /** Encoded as CBOR (a Map keeps integer keys). */
  body?: unknown;
  /** Raw payload instead of `body`. */
  payload?: Buffer;
  contentFormat?: number;
  accept?: number;
  /** Access token for option 65003, sent as its bytes unchanged (a JWT's ASCII, a CWT's bytes); `null` sends none. */
  token?: AccessToken | null;
  /** An Echo option value (RFC 9175) the gateway sent this device, repeated. */
  echo?: Buffer;
  confirmable?: boolean;
  query?: string;
  /** Give up after this long (overrides the client's `timeoutMs`). */
  timeoutMs?: number;
}

export interface DeviceClientOptions {
  /**
   * Give up on a request after this long, retransmissions included. Unset: node-coap's own
   * limit, EXCHANGE_LIFETIME (247 s). A load generator wants a bound well below that.
   */
  timeoutMs?: number;
  /**
   * The address to send from (bind), e.g. one of 127.0.0.0/8 to be a device of its own address
   * in front of a load balancer. Unset: loopback for a loopback gateway, else any.
   */
  localAddress?: string;
}

/** Why a request got no answer: the error's `code` is `COAP_TIMEOUT`. */
export class CoapTimeoutError extends Error {
  readonly code = 'COAP_TIMEOUT';

  constructor(message: string) {
    super(message);
    this.name = 'CoapTimeoutError';
  }
}

/** An access token as the gateway issued it: a JWT (text) or a CWT (bytes, a tagged COSE_Sign1). */
export type AccessToken = string | Buffer;

/** The format of an access token: a JWT is text, a CWT bytes. */
export function tokenFormatOf(token: AccessToken): TokenFormatName {
  return typeof token === 'string' ? 'jwt' : 'cwt';
}

/**
 * What a login or refresh asks for. `tokenFormat` sends key 6 (AuthRequestKey.tokenFormat);
 * without it nothing is sent and the gateway issues the device's default format.
 */
export interface TokenRequest {
  tokenFormat?: TokenFormatName | undefined;
}

/**
 * Without a TokenRequest, a caller that handles JWTs only: a 2.01 carrying a CWT yields no
 * `tokens`. With one (even `{}`), `accessToken` is whichever format the gateway sent.
 */
export interface AuthResult<T extends AccessToken = string> {
  answer: CoapAnswer;
  tokens?: Tokens<T>;
}

export interface Tokens<T extends AccessToken = string> {
  /** For the Access-Token option: a JWT (text), or with a TokenRequest possibly a CWT (bytes). */
  accessToken: T;
  /** Opaque bytes (REFRESH_TOKEN_BYTES): good for one `/auth/refresh`, whose answer carries the next. */
  refreshToken: Uint8Array;
  expiresInSec: number;
  serverTimeSec: number;
}

/** The answer of `POST /auth/nonce`: what a device without a clock puts in its assertion. */
export interface LoginNonce {
  nonce: Uint8Array;
  /** The gateway's clock when it issued the nonce: the assertion's `iat`. */
  serverTimeSec: number;
}

export interface AssertionLoginOptions {
  /** The gateway's audience (its `tokens.audience`, 'coap-gateway' by default). */
  audience: string;
  /** A device with a clock: its estimate of the gateway's clock gives `iat`, and `exp = iat + 300`. */
  clock?: { nowMs(): number };
  /** A device without one: the nonce of `nonce()`; `iat` is its server time and `exp = iat + 60`. */
  nonce?: LoginNonce;
}

/**
 * One simulated device: its own UDP socket (its own source port, so message IDs and
 * deduplication work per endpoint as with real devices), speaking CoAP through node-coap.
 */
export class DeviceClient {
  readonly #socket: CountingSocket;
  readonly #agent: Agent;
  readonly #host: string;
  readonly #port: number;
  readonly #timeoutMs: number | undefined;
  /** Signers by key, so a key is imported once however often the device logs in. */
  readonly #signers = new WeakMap<DevicePrivateJwk, AssertionSigner>();
  /** The last Echo value the gateway sent: repeated with the next nonce request, saving a round trip. */
  #echo: Buffer | undefined;

  private constructor(socket: CountingSocket, host: string, port: number, options: DeviceClientOptions) {
    this.#socket = socket;
    this.#agent = new Agent({ socket });
    this.#host = host;
    this.#port = port;
    this.#timeoutMs = options.timeoutMs;
  }

  static async open(host: string, port: number, options: DeviceClientOptions = {}): Promise<DeviceClient> {
    const socket = new CountingSocket({ type: isIPv6(host) ? 'udp6' : 'udp4' });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      // On loopback, listen on loopback only: nothing from the network can answer for the gateway.
      const bindAddress = options.localAddress
        ?? (host === '::1' || host.startsWith('127.') ? host : isIPv6(host) ? '::' : '0.0.0.0');
      socket.bind(0, bindAddress, () => { socket.off('error', reject); resolve(); });
    });
    return new DeviceClient(socket, host, port, options);
  }

  /** Every datagram this device sent: requests, retransmissions, and its ACKs and RSTs. */
  get bytesSent(): number {
    return this.#socket.bytesSent;
  }

  /** Every datagram this device received. */
  get bytesReceived(): number {
    return this.#socket.bytesReceived;
  }

  /** Bytes, datagrams and estimated 802.15.4 frames so far: subtract two to get one exchange's. */
  traffic(): Traffic {
    return this.#socket.traffic();
  }

  get localPort(): number {
    return this.#socket.address().port;
  }

  send(options: SendOptions): Promise<CoapAnswer> {
    return new Promise((resolve, reject) => {
      const req: OutgoingMessage = this.#agent.request({
        hostname: this.#host,
        port: this.#port,
        method: options.method ?? 'GET',
        pathname: options.path,
        query: options.query,
        confirmable: options.confirmable ?? true,
      });
      let payload = options.payload;
      if (payload === undefined && options.body !== undefined) payload = encodeCbor(options.body);
      const format = options.contentFormat ?? (options.body !== undefined ? ContentFormat.cbor : undefined);
      if (format !== undefined) req.setOption('Content-Format', format as never);
      if (options.accept !== undefined) req.setOption('Accept', options.accept as never);
      if (typeof options.token === 'string') req.setOption(String(ACCESS_TOKEN_OPTION), Buffer.from(options.token));
      else if (Buffer.isBuffer(options.token)) req.setOption(String(ACCESS_TOKEN_OPTION), options.token);
      if (options.echo !== undefined) req.setOption(String(ECHO_OPTION), options.echo);
      const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
      let timer: NodeJS.Timeout | undefined;
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          // abort() stops the retransmissions and forgets the message ID and token; a late
          // answer then gets a Reset from the agent, as a real device would send.
          this.#agent.abort(req);
          reject(new CoapTimeoutError(`CoAP timeout: no answer in ${timeoutMs} ms`));
        }, timeoutMs);
      }
      req.on('response', (res: IncomingMessage) => {
        clearTimeout(timer);
        resolve(toAnswer(res));
      });
      req.on('timeout', (err: Error) => {
        clearTimeout(timer);
        reject(new CoapTimeoutError(`CoAP timeout: ${err.message}`));
      });
      req.on('error', (err: Error) => {
        clearTimeout(timer);
        reject(err);
      });
      try {
        req.end(payload);
      } catch (err) {
        clearTimeout(timer);
        reject(err);
      }
    });
  }

  /** `POST /auth` with the device's secret (and key 6, the token format, when `request` names one). */
  async login(deviceId: string, secret: Buffer): Promise<AuthResult>;
  async login(deviceId: string, secret: Buffer, request: TokenRequest): Promise<AuthResult<AccessToken>>;
  async login(deviceId: string, secret: Buffer, request?: TokenRequest): Promise<AuthResult<AccessToken>> {
    const answer = await this.#proving({
      method: 'POST', path: Paths.auth,
      body: withTokenFormat(new Map<number, unknown>([[AuthRequestKey.deviceId, deviceId], [AuthRequestKey.secret, secret]]), request),
    });
    return { answer, tokens: answer.code === '2.01' ? toTokens(answer.body, request !== undefined) : undefined };
  }

  /**
   * `POST /auth` with an assertion the device signs with its own private key (header `{alg, kid}`,
   * claims `aud`, `iat`, `exp`, `jti` and, with `nonce`, `nonce`). Throws TypeError when the key
   * is not an ES256 or EdDSA private JWK, or neither `clock` nor `nonce` is given.
   */
  async loginWithAssertion(deviceId: string, privateJwk: DevicePrivateJwk, options: AssertionLoginOptions): Promise<AuthResult>;
  async loginWithAssertion(deviceId: string, privateJwk: DevicePrivateJwk, options: AssertionLoginOptions, request: TokenRequest)
    : Promise<AuthResult<AccessToken>>;
  async loginWithAssertion(deviceId: string, privateJwk: DevicePrivateJwk, options: AssertionLoginOptions, request?: TokenRequest)
    : Promise<AuthResult<AccessToken>> {
    const { audience, clock, nonce } = options;
    if (nonce === undefined && clock === undefined) throw new TypeError('loginWithAssertion: give a clock, or a nonce from nonce()');
    let signer = this.#signers.get(privateJwk);
    if (signer === undefined) {
      signer = new AssertionSigner(privateJwk);
      this.#signers.set(privateJwk, signer);
    }
    const assertion = await signer.sign(nonce !== undefined
      ? { audience, iatSec: nonce.serverTimeSec, lifetimeSec: NONCE_ASSERTION_LIFETIME_SEC, nonce: nonce.nonce }
      : { audience, iatSec: Math.floor(clock!.nowMs() / 1000), lifetimeSec: ASSERTION_LIFETIME_SEC });
    const answer = await this.#proving({
      method: 'POST', path: Paths.auth,
      body: withTokenFormat(new Map<number, unknown>([[AuthRequestKey.deviceId, deviceId], [AuthRequestKey.assertion, assertion]]), request),
    });
    return { answer, tokens: answer.code === '2.01' ? toTokens(answer.body, request !== undefined) : undefined };
  }

  /**
   * `POST /auth/nonce`: a nonce and the gateway's clock, for a device that has none. The answer
   * is larger than the request, so the gateway may first ask for an Echo round trip.
   */
  async nonce(): Promise<{ answer: CoapAnswer; nonce?: LoginNonce }> {
    const answer = await this.#proving({ method: 'POST', path: Paths.nonce, echo: this.#echo });
    return { answer, nonce: answer.code === '2.05' ? toNonce(answer.body) : undefined };
  }

  /** `POST /auth/refresh` with the refresh token of the last answer (used once: keep the new one); key 6 as for login. */
  async refresh(refreshToken: Uint8Array): Promise<AuthResult>;
  async refresh(refreshToken: Uint8Array, request: TokenRequest): Promise<AuthResult<AccessToken>>;
  async refresh(refreshToken: Uint8Array, request?: TokenRequest): Promise<AuthResult<AccessToken>> {
    const answer = await this.#proving({
      method: 'POST', path: Paths.refresh,
      body: withTokenFormat(new Map<number, unknown>([[AuthRequestKey.refreshToken, refreshToken]]), request),
    });
    return { answer, tokens: answer.code === '2.01' ? toTokens(answer.body, request !== undefined) : undefined };
  }

  /**
   * An unauthenticated request whose answer may be larger than it: RFC 9175 section 2.4, the
   * gateway answers 4.01 with an Echo option until the source address is proved; the request is
   * sent again, once, with that value.
   */
  async #proving(options: SendOptions): Promise<CoapAnswer> {
    const answer = await this.send(options);
    if (answer.code !== '4.01' || answer.echo === undefined) return answer;
    this.#echo = answer.echo;
    return this.send({ ...options, echo: answer.echo });
  }

  close(): Promise<void> {
    this.#agent.close();
    return new Promise((resolve) => this.#socket.close(() => resolve()));
  }
}

function toAnswer(res: IncomingMessage): CoapAnswer {
  const format = res.headers['Content-Format'] as number | string | undefined;
  const maxAge = res.headers['Max-Age'];
  // node-coap keeps the options it has no name for (Echo among them) only in `options`.
  const options = (res as unknown as { options?: { name: unknown; value: unknown }[] }).options ?? [];
  const echo = options.find((o) => o.name === String(ECHO_OPTION))?.value;
  let body: unknown;
  if ((format === 'application/cbor' || format === ContentFormat.cbor) && res.payload.length > 0) {
    try {
      body = decodeCbor(res.payload);
    } catch {
      body = undefined;
    }
  }
  return {
    code: res.code, payload: res.payload, contentFormat: format, maxAgeSec: typeof maxAge === 'number' ? maxAge : undefined, body,
    ...(Buffer.isBuffer(echo) ? { echo } : {}),
  };
}

/** Adds key 6 (the token format) to a login or refresh body when the request names a format. */
function withTokenFormat(body: Map<number, unknown>, request: TokenRequest | undefined): Map<number, unknown> {
  if (request?.tokenFormat !== undefined) body.set(AuthRequestKey.tokenFormat, TokenFormat[request.tokenFormat]);
  return body;
}

/**
 * The tokens of a 2.01 from /auth or /auth/refresh, or undefined when the body is not the wire
 * contract's: key 1 a text string (JWT) or, when `bytesAllowed`, a byte string (CWT).
 */
function toTokens(body: unknown, bytesAllowed: boolean): Tokens<AccessToken> | undefined {
  if (!(body instanceof Map)) return undefined;
  const map = body as Map<number, unknown>;
  const accessToken = map.get(AuthResponseKey.accessToken);
  const refreshToken = map.get(AuthResponseKey.refreshToken);
  const expiresInSec = map.get(AuthResponseKey.expiresInSec);
  const serverTimeSec = map.get(AuthResponseKey.serverTimeSec);
  const isText = typeof accessToken === 'string';
  const isBytes = bytesAllowed && accessToken instanceof Uint8Array && accessToken.length > 0;
  if (!(isText || isBytes) || !(refreshToken instanceof Uint8Array)
    || typeof expiresInSec !== 'number' || typeof serverTimeSec !== 'number') return undefined;
  // A copy: cbor-x may hand out views into the datagram's buffer.
  const token: AccessToken = isText ? accessToken : Buffer.from(accessToken as Uint8Array);
  return { accessToken: token, refreshToken: Uint8Array.from(refreshToken), expiresInSec, serverTimeSec };
}

/** The nonce of a 2.05 from /auth/nonce, or undefined when the body is not the wire contract's. */
function toNonce(body: unknown): LoginNonce | undefined {
  if (!(body instanceof Map)) return undefined;
  const map = body as Map<number, unknown>;
  const nonce = map.get(AuthResponseKey.nonce);
  const serverTimeSec = map.get(AuthResponseKey.serverTimeSec);
  if (!(nonce instanceof Uint8Array) || typeof serverTimeSec !== 'number') return undefined;
  return { nonce: Uint8Array.from(nonce), serverTimeSec };
}

import { randomInt } from 'node:crypto';
import { isIPv6 } from 'node:net';
import { Agent, type IncomingMessage, type OutgoingMessage } from 'coap';
import {
  ACCESS_TOKEN_OPTION, AuthRequestKey, AuthResponseKey, ContentFormat, Paths, TokenFormat, decodeCbor, encodeCbor,
  type TokenFormatName,
} from '../../gateway/src/wire/index.ts';
import { OSCORE_OPTION, OscoreError, type CoapMessage, type RequestBinding } from '../../gateway/src/wire/oscore/index.ts';
import { CountingSocket, type Traffic } from './counting-socket.ts';
import {
  ASSERTION_LIFETIME_SEC, AssertionSigner, NONCE_ASSERTION_LIFETIME_SEC, type DevicePrivateJwk,
} from './device-assertion.ts';
import type { DeviceOscoreContext } from './oscore-context.ts';
import {
  InnerOption, blockValue, innerAnswerParts, innerRequest, optionValue, readBlock, uintValue, withOption, withoutOption,
} from './oscore-messages.ts';

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
  /**
   * Only for a request sent under OSCORE: 'oscore', the answer verified under the device's
   * context (everything above is its inner message); 'none', an error the gateway could only
   * answer in clear (RFC 8613 section 8.2: a malformed option, no context, a failed decryption,
   * a replay), whose code and body nobody vouches for. A success in clear is never accepted.
   */
  protection?: 'oscore' | 'none';
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
  /** A client with an OSCORE context protects every request; 'none' sends this one in clear. */
  protection?: 'oscore' | 'none';
  /** OSCORE: one bit of the ciphertext flipped before sending, as an attacker would (the gateway answers 4.00 in clear). */
  tamperCiphertext?: boolean;
  /**
   * OSCORE: upload the payload in inner Block1 blocks of this many bytes (16 to 1024, a power of
   * two; RFC 8613 section 4.1.3.4.1: each block a request of its own, protected on its own).
   */
  block1Bytes?: number;
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
  /** The device's OSCORE context (RFC 8613): every request is protected with it, unless one says otherwise. */
  oscore?: DeviceOscoreContext;
  /** Bytes of the CoAP token, 1 to 8; unset: node-coap's 8. A constrained device often uses 1 or 2, which is what the air then carries. */
  tokenBytes?: number;
}

/** What a client's OSCORE requests came to, since it opened. */
export interface OscoreClientStats {
  /** Protected requests sent (a retransmission is the same datagram and not counted again). */
  protectedRequests: number;
  /** Times the gateway held no replay window and asked for an Echo (RFC 8613 Appendix B.1.2), and the request was repeated with it. */
  echoRecoveries: number;
  /** Answers in clear to protected requests (section 8.2 errors), taken as errors. */
  unprotectedErrors: number;
  /** Answers refused: a success in clear, or a protected answer that did not verify. */
  refusedAnswers: number;
}

/**
 * An answer to a protected request that the device cannot accept: a success in clear (anyone on
 * the path could have sent it), or a protected answer that does not verify under its context
 * (altered, or not the gateway's). Its `code` says which; `coapCode` is the outer code seen.
 */
export class OscoreAnswerError extends Error {
  readonly code: 'OSCORE_UNPROTECTED_SUCCESS' | 'OSCORE_ANSWER_NOT_VERIFIED';
  readonly coapCode: string;

  constructor(code: OscoreAnswerError['code'], coapCode: string, detail: string) {
    super(code === 'OSCORE_UNPROTECTED_SUCCESS'
      ? `OSCORE: a ${coapCode} success answered a protected request in clear; refused (only errors may come unprotected)`
      : `OSCORE: the ${coapCode} answer to a protected request does not verify (${detail}); refused`);
    this.name = 'OscoreAnswerError';
    this.code = code;
    this.coapCode = coapCode;
  }
}

const EMPTY = Buffer.alloc(0);
/** RFC 7959 section 2.2: SZX 0-6 (16 to 1024 bytes). */
const BLOCK_SIZES = [16, 32, 64, 128, 256, 512, 1024] as const;
/** Blocks of one answer fetched at most (Block2): bounds a gateway that always says "more". */
const MAX_BLOCK2_BLOCKS = 4096;

/** A request as node-coap takes it: outer code, URI parts, options by name or number, payload. */
interface OuterRequest {
  method: string;
  pathname?: string | undefined;
  query?: string | undefined;
  confirmable: boolean;
  timeoutMs: number | undefined;
  options: [name: string, value: unknown][];
  payload: Buffer | undefined;
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
  readonly #oscore: DeviceOscoreContext | undefined;
  readonly #oscoreStats: OscoreClientStats = { protectedRequests: 0, echoRecoveries: 0, unprotectedErrors: 0, refusedAnswers: 0 };
  readonly #tokenBytes: number | undefined;
  #nextToken: number;
  #lastRequestDatagram: Buffer | undefined;

  private constructor(socket: CountingSocket, host: string, port: number, options: DeviceClientOptions) {
    this.#socket = socket;
    this.#agent = new Agent({ socket });
    this.#host = host;
    this.#port = port;
    this.#timeoutMs = options.timeoutMs;
    this.#oscore = options.oscore;
    this.#tokenBytes = options.tokenBytes;
    this.#nextToken = randomInt(2 ** 24);
  }

  static async open(host: string, port: number, options: DeviceClientOptions = {}): Promise<DeviceClient> {
    const { tokenBytes } = options;
    if (tokenBytes !== undefined && !(Number.isInteger(tokenBytes) && tokenBytes >= 1 && tokenBytes <= 8)) {
      throw new TypeError(`tokenBytes: a CoAP token here is 1 to 8 bytes, not ${tokenBytes}`);
    }
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

  /** The device's OSCORE context, when it has one. */
  get oscore(): DeviceOscoreContext | undefined {
    return this.#oscore;
  }

  /** What this client's OSCORE requests came to so far. */
  oscoreStats(): OscoreClientStats {
    return { ...this.#oscoreStats };
  }

  /** A copy of the last request datagram this client sent (its first transmission), as anyone in radio range could have recorded it. */
  get lastRequestDatagram(): Buffer | undefined {
    return this.#lastRequestDatagram === undefined ? undefined : Buffer.from(this.#lastRequestDatagram);
  }

  /**
   * One request and its answer. With an OSCORE context (and unless `protection: 'none'`), the
   * request is protected as RFC 8613 section 8.1 says and the answer verified (section 8.4);
   * an Echo the gateway asks for to re-establish its replay window (Appendix B.1.2) is answered
   * at once, and the caller sees the answer to the repeated request. Rejects with
   * OscoreAnswerError for an answer that cannot be accepted, CoapTimeoutError without one.
   */
  send(options: SendOptions): Promise<CoapAnswer> {
    if (this.#oscore !== undefined && options.protection !== 'none') return this.#sendProtected(this.#oscore, options);
    if (options.tamperCiphertext === true || options.block1Bytes !== undefined) {
      return Promise.reject(new TypeError('tamperCiphertext and block1Bytes are for requests under OSCORE'));
    }
    let payload = options.payload;
    if (payload === undefined && options.body !== undefined) payload = encodeCbor(options.body);
    const format = options.contentFormat ?? (options.body !== undefined ? ContentFormat.cbor : undefined);
    const coapOptions: [string, unknown][] = [];
    if (format !== undefined) coapOptions.push(['Content-Format', format]);
    if (options.accept !== undefined) coapOptions.push(['Accept', options.accept]);
    if (typeof options.token === 'string') coapOptions.push([String(ACCESS_TOKEN_OPTION), Buffer.from(options.token)]);
    else if (Buffer.isBuffer(options.token)) coapOptions.push([String(ACCESS_TOKEN_OPTION), options.token]);
    if (options.echo !== undefined) coapOptions.push([String(ECHO_OPTION), options.echo]);
    return this.#request({
      method: options.method ?? 'GET', pathname: options.path, query: options.query, confirmable: options.confirmable ?? true,
      timeoutMs: options.timeoutMs ?? this.#timeoutMs, options: coapOptions, payload,
    }).then(toAnswer);
  }

  /** Sends one request through node-coap (retransmissions and deduplication are its own) and resolves with the answer. */
  #request(outer: OuterRequest): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req: OutgoingMessage = this.#agent.request({
        hostname: this.#host,
        port: this.#port,
        method: outer.method as never,
        // No pathname: node-coap then writes no Uri-Path at all (checked on the bytes in the tests).
        ...(outer.pathname === undefined ? {} : { pathname: outer.pathname }),
        query: outer.query,
        confirmable: outer.confirmable,
        ...(this.#tokenBytes === undefined ? {} : { token: this.#token(this.#tokenBytes) }),
      });
      for (const [name, value] of outer.options) req.setOption(name, value as never);
      const { timeoutMs } = outer;
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
        resolve(res);
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
        req.end(outer.payload);
        // node-coap writes the datagram within end(): the socket's last one is this request.
        this.#lastRequestDatagram = this.#socket.lastSent;
      } catch (err) {
        clearTimeout(timer);
        reject(err);
      }
    });
  }

  /** A token of `bytes` bytes from a counter of this client's (unique among its requests in flight). */
  #token(bytes: number): Buffer {
    const width = Math.min(bytes, 6);
    this.#nextToken = (this.#nextToken + 1) % 2 ** (width * 8);
    const token = Buffer.alloc(bytes);
    token.writeUIntBE(this.#nextToken, bytes - width, width);
    return token;
  }

  async #sendProtected(oscore: DeviceOscoreContext, options: SendOptions): Promise<CoapAnswer> {
    const payload = options.payload ?? (options.body !== undefined ? encodeCbor(options.body) : EMPTY);
    const token = typeof options.token === 'string' ? Buffer.from(options.token) : options.token ?? undefined;
    const inner = innerRequest({
      method: options.method ?? 'GET', path: options.path, query: options.query, payload, accessToken: token, echo: options.echo,
      contentFormat: options.contentFormat ?? (options.body !== undefined ? ContentFormat.cbor : undefined), accept: options.accept,
    });
    let last = options.block1Bytes === undefined
      ? await this.#exchangeRecovering(oscore, inner, options)
      : await this.#uploadBlocks(oscore, inner, options.block1Bytes, options);
    // An answer larger than one block comes in inner Block2 blocks (RFC 7959 section 2.4): the
    // later ones are asked for with the same request, no payload, and the next block number.
    const parts: Buffer[] = [];
    for (let blocks = 1; last.message !== undefined; blocks += 1) {
      const block2 = optionValue(last.message, InnerOption.block2);
      if (block2 === undefined || !last.answer.code.startsWith('2.')) break;
      parts.push(last.answer.payload);
      const { num, more, szx } = readBlock(block2);
      if (!more) break;
      if (blocks >= MAX_BLOCK2_BLOCKS) throw new Error(`Block2: the answer is still not whole after ${MAX_BLOCK2_BLOCKS} blocks`);
      const next = withOption(withoutOption(withoutOption(withoutOption({ ...inner, payload: EMPTY }, InnerOption.block1), InnerOption.size1),
        InnerOption.contentFormat), { number: InnerOption.block2, value: blockValue({ num: num + 1, more: false, szx }) });
      last = await this.#exchangeRecovering(oscore, next, options);
    }
    return parts.length <= 1 ? last.answer : { ...last.answer, payload: Buffer.concat(parts), body: bodyOf(last.answer.contentFormat, Buffer.concat(parts)) };
  }

  /**
   * Inner Block1 (RFC 8613 section 4.1.3.4.1, RFC 7959 section 2.5): each block a protected
   * request of its own, Size1 on the first; a 2.31 asks for the next (with a smaller size if
   * the gateway's Block1 says so); any other answer before the last block ends the upload.
   */
  async #uploadBlocks(oscore: DeviceOscoreContext, inner: CoapMessage, blockBytes: number, options: SendOptions)
    : Promise<{ answer: CoapAnswer; message: CoapMessage | undefined }> {
    let szx = BLOCK_SIZES.indexOf(blockBytes as (typeof BLOCK_SIZES)[number]);
    if (szx === -1) throw new TypeError(`block1Bytes: one of ${BLOCK_SIZES.join(', ')}, not ${blockBytes}`);
    const whole = inner.payload;
    for (let offset = 0; ;) {
      const size = BLOCK_SIZES[szx]!;
      const more = offset + size < whole.length;
      let block = withOption({ ...inner, payload: whole.subarray(offset, offset + size) },
        { number: InnerOption.block1, value: blockValue({ num: offset / size, more, szx }) });
      if (offset === 0) block = withOption(block, { number: InnerOption.size1, value: uintValue(whole.length) });
      const result = await this.#exchangeRecovering(oscore, block, options);
      if (!more || result.answer.code !== '2.31') return result;
      const asked = result.message === undefined ? undefined : optionValue(result.message, InnerOption.block1);
      offset += size;
      if (asked !== undefined) szx = Math.min(szx, readBlock(asked).szx);
    }
  }

  /** One protected exchange, repeated once with the gateway's Echo when it holds no replay window for this context (Appendix B.1.2). */
  async #exchangeRecovering(oscore: DeviceOscoreContext, inner: CoapMessage, options: SendOptions)
    : Promise<{ answer: CoapAnswer; message: CoapMessage | undefined }> {
    const first = await this.#exchangeProtected(oscore, inner, options);
    const { answer } = first;
    if (answer.protection !== 'oscore' || answer.code !== '4.01' || answer.echo === undefined) return first;
    this.#oscoreStats.echoRecoveries += 1;
    return this.#exchangeProtected(oscore, withOption(inner, { number: InnerOption.echo, value: answer.echo }), options);
  }

  /** Section 8.1 under a new sequence number; the answer verified (section 8.4), or taken as an error in clear. */
  async #exchangeProtected(oscore: DeviceOscoreContext, inner: CoapMessage, options: SendOptions)
    : Promise<{ answer: CoapAnswer; message: CoapMessage | undefined }> {
    const sealed = oscore.protect(await oscore.take(), inner);
    let payload = sealed.payload;
    if (options.tamperCiphertext === true) {
      payload = Buffer.from(payload);
      payload[0]! ^= 0x01;
    }
    this.#oscoreStats.protectedRequests += 1;
    const res = await this.#request({
      // Section 4.2: the outer code is POST (FETCH with an Observe), whatever the inner one.
      method: sealed.outerCode === '0.05' ? 'FETCH' : 'POST', confirmable: options.confirmable ?? true,
      timeoutMs: options.timeoutMs ?? this.#timeoutMs, options: sealed.outerOptions.map((o) => [String(o.number), o.value]), payload,
    });
    return this.#verify(oscore, sealed.request, res);
  }

  #verify(oscore: DeviceOscoreContext, binding: RequestBinding, res: IncomingMessage): { answer: CoapAnswer; message: CoapMessage | undefined } {
    const value = rawOptions(res).find((o) => o.name === 'OSCORE' || o.name === String(OSCORE_OPTION))?.value;
    if (!Buffer.isBuffer(value)) {
      if (res.code.startsWith('2.')) {
        this.#oscoreStats.refusedAnswers += 1;
        throw new OscoreAnswerError('OSCORE_UNPROTECTED_SUCCESS', res.code, 'no OSCORE option');
      }
      this.#oscoreStats.unprotectedErrors += 1;
      return { answer: { ...toAnswer(res), protection: 'none' }, message: undefined };
    }
    let message: CoapMessage;
    try {
      message = oscore.unprotect(binding, value, res.payload);
    } catch (err) {
      if (!(err instanceof OscoreError)) throw err;
      this.#oscoreStats.refusedAnswers += 1;
      throw new OscoreAnswerError('OSCORE_ANSWER_NOT_VERIFIED', res.code, err.code);
    }
    const { contentFormat, maxAgeSec, echo, body } = innerAnswerParts(message);
    return {
      answer: { code: message.code, payload: message.payload, contentFormat, maxAgeSec, body, ...(echo === undefined ? {} : { echo }), protection: 'oscore' },
      message,
    };
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

/** node-coap keeps the options it has no name for (Echo, OSCORE's value as sent) in `options`, as coap-packet parsed them. */
function rawOptions(res: IncomingMessage): { name: unknown; value: unknown }[] {
  return (res as unknown as { options?: { name: unknown; value: unknown }[] }).options ?? [];
}

function bodyOf(format: number | string | undefined, payload: Buffer): unknown {
  if ((format !== 'application/cbor' && format !== ContentFormat.cbor) || payload.length === 0) return undefined;
  try {
    return decodeCbor(payload);
  } catch {
    return undefined;
  }
}

function toAnswer(res: IncomingMessage): CoapAnswer {
  const format = res.headers['Content-Format'] as number | string | undefined;
  const maxAge = res.headers['Max-Age'];
  const echo = rawOptions(res).find((o) => o.name === String(ECHO_OPTION))?.value;
  return {
    code: res.code, payload: res.payload, contentFormat: format, maxAgeSec: typeof maxAge === 'number' ? maxAge : undefined,
    body: bodyOf(format, res.payload), ...(Buffer.isBuffer(echo) ? { echo } : {}),
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

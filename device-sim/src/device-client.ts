import { Socket, type SocketOptions } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { Agent, type IncomingMessage, type OutgoingMessage } from 'coap';
import {
  ACCESS_TOKEN_OPTION, AuthRequestKey, AuthResponseKey, ContentFormat, decodeCbor, encodeCbor,
} from '../../gateway/src/wire/index.ts';


export interface CoapAnswer {
  code: string;
  payload: Buffer;
  contentFormat: number | string | undefined;
  maxAgeSec: number | undefined;
  /** The payload decoded as CBOR when it is CBOR, else undefined. */
  body: unknown;
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
  /** Access token for option 65003; `null` sends none. */
  token?: string | null;
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

export interface Tokens {
  accessToken: string;
  refreshToken: string;
  expiresInSec: number;
  serverTimeSec: number;
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

  async login(deviceId: string, secret: Buffer): Promise<{ answer: CoapAnswer; tokens?: Tokens }> {
    const answer = await this.send({
      method: 'POST', path: '/auth',
      body: new Map<number, unknown>([[AuthRequestKey.deviceId, deviceId], [AuthRequestKey.secret, secret]]),
    });
    return { answer, tokens: answer.code === '2.01' ? toTokens(answer.body) : undefined };
  }

  async refresh(refreshToken: string): Promise<{ answer: CoapAnswer; tokens?: Tokens }> {
    const answer = await this.send({
      method: 'POST', path: '/auth/refresh',
      body: new Map<number, unknown>([[AuthRequestKey.refreshToken, refreshToken]]),
    });
    return { answer, tokens: answer.code === '2.01' ? toTokens(answer.body) : undefined };
  }

  close(): Promise<void> {
    this.#agent.close();
    return new Promise((resolve) => this.#socket.close(() => resolve()));
  }
}

/**
 * A UDP socket that counts the bytes of every datagram it sends and receives, whoever sends
 * them (node-coap's retransmissions and ACKs included), so byte figures are what went on the air.
 */
class CountingSocket extends Socket {
  bytesSent = 0;
  bytesReceived = 0;

  constructor(options: SocketOptions) {
    // @types/node declares no constructor for dgram.Socket; at run time it is
    // Socket(type | options, listener), which is all createSocket() calls.
    super(options as never);
    this.on('message', (msg: Buffer) => { this.bytesReceived += msg.length; });
  }

  // node-coap calls send(msg, offset, length, port, address, callback); the one-buffer forms count the buffer.
  override send(...args: unknown[]): void {
    const [msg, , length] = args;
    if (typeof length === 'number') this.bytesSent += length;
    else if (msg instanceof Uint8Array) this.bytesSent += msg.length;
    (super.send as (...a: unknown[]) => void)(...args);
  }
}

function toAnswer(res: IncomingMessage): CoapAnswer {
  const format = res.headers['Content-Format'] as number | string | undefined;
  const maxAge = res.headers['Max-Age'];
  let body: unknown;
  if ((format === 'application/cbor' || format === ContentFormat.cbor) && res.payload.length > 0) {
    try {
      body = decodeCbor(res.payload);
    } catch {
      body = undefined;
    }
  }
  return { code: res.code, payload: res.payload, contentFormat: format, maxAgeSec: typeof maxAge === 'number' ? maxAge : undefined, body };
}

/** The tokens of a 2.01 from /auth or /auth/refresh, or undefined when the body is not the wire contract's. */
function toTokens(body: unknown): Tokens | undefined {
  if (!(body instanceof Map)) return undefined;
  const map = body as Map<number, unknown>;
  const tokens = {
    accessToken: map.get(AuthResponseKey.accessToken),
    refreshToken: map.get(AuthResponseKey.refreshToken),
    expiresInSec: map.get(AuthResponseKey.expiresInSec),
    serverTimeSec: map.get(AuthResponseKey.serverTimeSec),
  };
  const ok = typeof tokens.accessToken === 'string' && typeof tokens.refreshToken === 'string'
    && typeof tokens.expiresInSec === 'number' && typeof tokens.serverTimeSec === 'number';
  return ok ? tokens as Tokens : undefined;
}

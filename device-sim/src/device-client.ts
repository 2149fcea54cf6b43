import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { Agent, request as coapRequest, type IncomingMessage } from 'coap';
import { Decoder, Encoder } from 'cbor-x';
import {
  ACCESS_TOKEN_OPTION, AuthRequestKey, AuthResponseKey, ContentFormat,
} from '../../gateway/src/wire/index.ts';

const encoder = new Encoder({ mapsAsObjects: false, useRecords: false });
const decoder = new Decoder({ mapsAsObjects: false, useRecords: false });

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
  readonly #socket: Socket;
  readonly #agent: Agent;
  readonly #host: string;
  readonly #port: number;
  bytesSent = 0;
  bytesReceived = 0;

  private constructor(socket: Socket, host: string, port: number) {
    this.#socket = socket;
    this.#agent = new Agent({ socket });
    this.#host = host;
    this.#port = port;
    socket.on('message', (msg) => { this.bytesReceived += msg.length; });
    const send = socket.send.bind(socket) as (...args: unknown[]) => void;
    (socket as unknown as { send: (...args: unknown[]) => void }).send = (...args: unknown[]) => {
      const msg = args[0];
      if (Buffer.isBuffer(msg)) this.bytesSent += typeof args[2] === 'number' ? args[2] : msg.length;
      send(...args);
    };
  }

  static async open(host: string, port: number): Promise<DeviceClient> {
    const socket = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4' });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, isIPv6(host) ? '::' : undefined, () => { socket.off('error', reject); resolve(); });
    });
    return new DeviceClient(socket, host, port);
  }

  get localPort(): number {
    return this.#socket.address().port;
  }

  send(options: SendOptions): Promise<CoapAnswer> {
    return new Promise((resolve, reject) => {
      const req = coapRequest({
        hostname: this.#host,
        port: this.#port,
        method: options.method ?? 'GET',
        pathname: options.path,
        query: options.query,
        confirmable: options.confirmable ?? true,
        agent: this.#agent,
      });
      let payload = options.payload;
      if (payload === undefined && options.body !== undefined) payload = encoder.encode(options.body);
      const format = options.contentFormat ?? (options.body !== undefined ? ContentFormat.cbor : undefined);
      if (format !== undefined) req.setOption('Content-Format', format as never);
      if (options.accept !== undefined) req.setOption('Accept', options.accept as never);
      if (typeof options.token === 'string') req.setOption(String(ACCESS_TOKEN_OPTION), Buffer.from(options.token));
      req.on('response', (res: IncomingMessage) => resolve(toAnswer(res)));
      req.on('timeout', (err: Error) => reject(Object.assign(new Error(`CoAP timeout: ${err.message}`), { code: 'COAP_TIMEOUT' })));
      req.on('error', reject);
      req.end(payload);
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

function toAnswer(res: IncomingMessage): CoapAnswer {
  const format = res.headers['Content-Format'] as number | string | undefined;
  const maxAge = res.headers['Max-Age'];
  let body: unknown;
  if ((format === 'application/cbor' || format === ContentFormat.cbor) && res.payload.length > 0) {
    try {
      body = decoder.decode(res.payload);
    } catch {
      body = undefined;
    }
  }
  return { code: res.code, payload: res.payload, contentFormat: format, maxAgeSec: typeof maxAge === 'number' ? maxAge : undefined, body };
}

function toTokens(body: unknown): Tokens {
  const map = body as Map<number, unknown>;
  return {
    accessToken: map.get(AuthResponseKey.accessToken) as string,
    refreshToken: map.get(AuthResponseKey.refreshToken) as string,
    expiresInSec: map.get(AuthResponseKey.expiresInSec) as number,
    serverTimeSec: map.get(AuthResponseKey.serverTimeSec) as number,
  };
}

import { readFileSync } from 'node:fs';
import { Pool, errors as undiciErrors } from 'undici';
import { BridgeError } from '../errors.ts';
import type { CoapRequest, CoapResponse } from '../messages.ts';
import { checkAnswerFormat, negotiate, requestBody, responseBody } from './body-mapping.ts';
import { coapEtagFor } from './etag.ts';
import { locationOptionsFor } from './location.ts';
import { exchange, type HttpAnswer } from './http-exchange.ts';
import type { RouteConfig } from '../config/index.ts';
import { fillTemplate, type RouteMatch } from './router.ts';
import { cacheControlToMaxAge, coapCodeFor, retryAfterToMaxAge } from './status-map.ts';

export interface BridgeOptions {
  url: string;
  caFile: string | undefined;
  timeoutMs: number;
  connections: number;
  nowMs: () => number;
}

export interface ForwardInput {
  request: CoapRequest;
  match: RouteMatch;
  deviceId: string;
  /** The JWT the backend receives in `Authorization: Bearer`. */
  accessToken: string;
}

/**
 * What the backend answered: its status, and the answer mapped to CoAP, or the reason its answer
 * could not be (a content type the device did not accept, a body that is not what it says).
 */
export type Forwarded = { backendStatus: number } & ({ response: CoapResponse; error?: undefined } | { error: unknown; response?: undefined });

export interface Bridge {
  /** Throws when the backend gave no answer (unreachable, timed out); otherwise what it answered. */
  forward(input: ForwardInput): Promise<Forwarded>;
  close(): Promise<void>;
}

/** A backend answer larger than this is no answer for a constrained device (5.02): it would take thousands of blocks. */
const MAX_RESPONSE_BYTES = 1024 * 1024;
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

/**
 * Forwards approved requests to the HTTP backend over a keep-alive pool and maps the answer back
 * (RFC 7252 section 10.2, RFC 8075): status, body (JSON <-> CBOR on cbor-json routes), content
 * format, Max-Age, ETag and Location.
 */
export function buildBridge(options: BridgeOptions): Bridge {
  const base = new URL(options.url);
  const prefix = base.pathname.replace(/\/$/, '');
  const ca = options.caFile !== undefined ? readFileSync(options.caFile) : undefined;
  const pool = new Pool(base.origin, {
    connections: options.connections,
    connect: ca !== undefined ? { ca } : {},
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
  });

  /** The backend's answer mapped back (RFC 8075 section 7): status, Max-Age, ETag, 2.03, Location, body. */
  const mapAnswer = (response: HttpAnswer, request: CoapRequest, route: RouteConfig, path: string, wantJson: boolean): CoapResponse => {
    const raw = response.body;
    const answer: CoapResponse = { code: coapCodeFor(response.statusCode, request.method) };
    const nowMs = options.nowMs();
    const maxAge = answer.code === '4.29' || answer.code === '5.03'
      ? retryAfterToMaxAge(header(response.headers['retry-after']), nowMs)
      : cacheControlToMaxAge(header(response.headers['cache-control']));
    if (maxAge !== undefined) answer.maxAgeSec = maxAge;
    const responseType = header(response.headers['content-type']);
    if (answer.code.startsWith('2.')) {
      if (raw.length > 0) checkAnswerFormat(route, request.accept, responseType);
      const httpEtag = header(response.headers.etag);
      if (httpEtag !== undefined && httpEtag !== '') answer.etag = coapEtagFor(httpEtag);
      // RFC 7252 section 5.10.6.2: the device already holds this representation; 2.03 Valid
      // refreshes it (with Max-Age) and carries no payload. A backend 304 maps to 2.03 by the
      // status table and never has content (RFC 9110 section 15.4.5).
      if (request.method === 'GET' && answer.code === '2.05' && holds(request.etags, answer.etag)) {
        answer.code = '2.03';
        return answer;
      }
      const location = response.statusCode === 201 ? header(response.headers.location) : undefined;
      if (location !== undefined) Object.assign(answer, locationOptionsFor(location, new URL(path, base.origin), prefix));
    }
    if (raw.length > 0) Object.assign(answer, responseBody(raw, responseType, route, wantJson));
    return answer;
  };

  return {
    async forward({ request, match, deviceId, accessToken }: ForwardInput): Promise<Forwarded> {
      const { route } = match;
      const { acceptHeader, wantJson } = negotiate(route, request.accept);
      const { body, contentType } = requestBody(request, route);
      const path = prefix + fillTemplate(route.backendPath, { ...match.params, sub: deviceId })
        + (request.query.length > 0 ? `?${request.query.map(encodeQueryPair).join('&')}` : '');
      const headers: Record<string, string> = {
        authorization: `Bearer ${accessToken}`,
        'x-device-id': deviceId,
        'x-request-id': request.id,
        'x-forwarded-for': request.peer.address,
        accept: acceptHeader,
      };
      if (contentType !== undefined) headers['content-type'] = contentType;

      let response: HttpAnswer;
      try {
        response = await exchange(pool, { method: request.method as 'GET', path, headers, body },
          MAX_RESPONSE_BYTES, performance.now() + options.timeoutMs);
      } catch (err) {
        throw backendFailure(err);
      }
      const backendStatus = response.statusCode;
      try {
        return { response: mapAnswer(response, request, route, path, wantJson), backendStatus };
      } catch (error) {
        return { error, backendStatus };
      }
    },
    close: () => pool.close(),
  };
}

function holds(etags: readonly Buffer[], etag: Buffer | undefined): boolean {
  return etag !== undefined && etags.some((held) => held.equals(etag));
}

function backendFailure(err: unknown): BridgeError {
  if (err instanceof BridgeError) return err;
  const code = (err as { code?: string }).code ?? '';
  if (TIMEOUT_CODES.has(code) || err instanceof undiciErrors.HeadersTimeoutError) {
    return new BridgeError('GW_ERR_BACKEND_TIMEOUT', `backend did not answer in time (${code})`, { cause: err });
  }
  return new BridgeError('GW_ERR_BACKEND_UNREACHABLE', `backend unreachable (${code || (err as Error).message})`, { cause: err });
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function encodeQueryPair(pair: string): string {
  const eq = pair.indexOf('=');
  if (eq === -1) return encodeURIComponent(pair);
  return `${encodeURIComponent(pair.slice(0, eq))}=${encodeURIComponent(pair.slice(eq + 1))}`;
}

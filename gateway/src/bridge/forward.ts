import { readFileSync } from 'node:fs';
import { Pool, errors as undiciErrors } from 'undici';
import { formatFor, mediaTypeFor, type CoapRequest, type CoapResponse, type RequestContext } from '../coap/index.ts';
import type { RouteConfig } from '../config/index.ts';
import { BridgeError, RequestError } from '../errors.ts';
import { ContentFormat } from '../wire/index.ts';
import { cborToJson, jsonToCbor } from './cbor-json.ts';
import { fillTemplate, type RouteMatch } from './router.ts';
import { cacheControlToMaxAge, coapCodeFor, retryAfterToMaxAge } from './status-map.ts';

export interface BridgeOptions {
  url: string;
  caFile: string | undefined;
  timeoutMs: number;
  connections: number;
  maxResponseBytes?: number;
  nowMs: () => number;
}

export interface ForwardInput {
  request: CoapRequest;
  match: RouteMatch;
  deviceId: string;
  accessToken: string;
  context: RequestContext;
}

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

/**
 * Forwards approved requests to the HTTP backend over a keep-alive pool and maps the answer back
 * (RFC 8075): status, body (JSON <-> CBOR on cbor-json routes), content format, Max-Age.
 */
export function buildBridge(options: BridgeOptions) {
  const base = new URL(options.url);
  const prefix = base.pathname.replace(/\/$/, '');
  const ca = options.caFile !== undefined ? readFileSync(options.caFile) : undefined;
  const pool = new Pool(base.origin, {
    connections: options.connections,
    connect: ca !== undefined ? { ca } : {},
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
  });
  const maxResponseBytes = options.maxResponseBytes ?? 1024 * 1024;

  return {
    async forward({ request, match, deviceId, accessToken, context }: ForwardInput): Promise<CoapResponse> {
      const { route } = match;
      const wantJson = route.body === 'cbor-json' && request.accept === ContentFormat.json;
      if (route.body === 'cbor-json' && request.accept !== undefined && request.accept !== ContentFormat.cbor && !wantJson) {
        throw new RequestError('GW_ERR_NOT_ACCEPTABLE', `cannot answer in content format ${request.accept}`);
      }
      const { body, contentType } = requestBody(request, route);
      const path = prefix + fillTemplate(route.backendPath, { ...match.params, sub: deviceId })
        + (request.query.length > 0 ? `?${request.query.map(encodeQueryPair).join('&')}` : '');
      const headers: Record<string, string> = {
        authorization: `Bearer ${accessToken}`,
        'x-device-id': deviceId,
        'x-request-id': context.requestId,
        'x-forwarded-for': request.peer.address,
        accept: route.body === 'cbor-json' ? 'application/json' : '*/*',
      };
      if (contentType !== undefined) headers['content-type'] = contentType;

      let response;
      try {
        response = await pool.request({ method: request.method as 'GET', path, headers, body });
      } catch (err) {
        throw backendFailure(err);
      }
      context.backendStatus = response.statusCode;
      let raw: Buffer;
      try {
        raw = await readLimited(response.body, maxResponseBytes, performance.now() + options.timeoutMs);
      } catch (err) {
        throw backendFailure(err);
      }
      const code = coapCodeFor(response.statusCode, request.method);
      const answer: CoapResponse = { code };
      const nowMs = options.nowMs();
      const maxAge = code === '4.29' || code === '5.03'
        ? retryAfterToMaxAge(header(response.headers['retry-after']), nowMs)
        : cacheControlToMaxAge(header(response.headers['cache-control']));
      if (maxAge !== undefined) answer.maxAgeSec = maxAge;
      if (raw.length > 0) Object.assign(answer, responseBody(raw, header(response.headers['content-type']), route, wantJson));
      return answer;
    },
    close: () => pool.close(),
  };
}

export type Bridge = ReturnType<typeof buildBridge>;

function requestBody(request: CoapRequest, route: RouteConfig): { body?: string | Buffer; contentType?: string } {
  if (request.payload.length === 0) return {};
  if (route.body === 'pass-through') return { body: request.payload, contentType: mediaTypeFor(request.contentFormat) };
  switch (request.contentFormat) {
    case undefined:
    case ContentFormat.cbor:
      return { body: cborToJson(request.payload), contentType: 'application/json' };
    case ContentFormat.json:
      return { body: request.payload, contentType: 'application/json' };
    default:
      throw new RequestError('GW_ERR_UNSUPPORTED_CONTENT_FORMAT',
        `route ${route.path} takes CBOR (60) or JSON (50), got content format ${request.contentFormat}`);
  }
}

function responseBody(raw: Buffer, contentType: string | undefined, route: RouteConfig, wantJson: boolean)
  : Pick<CoapResponse, 'payload' | 'contentFormat'> {
  const format = formatFor(contentType);
  if (route.body === 'cbor-json' && format === ContentFormat.json && !wantJson) {
    try {
      return { payload: jsonToCbor(raw.toString('utf8')), contentFormat: ContentFormat.cbor };
    } catch (err) {
      throw new BridgeError('GW_ERR_BACKEND_BAD_RESPONSE', `backend sent invalid JSON: ${(err as Error).message}`);
    }
  }
  return format === undefined ? { payload: raw } : { payload: raw, contentFormat: format };
}

function backendFailure(err: unknown): BridgeError {
  if (err instanceof BridgeError) return err;
  const code = (err as { code?: string }).code ?? '';
  if (TIMEOUT_CODES.has(code) || err instanceof undiciErrors.HeadersTimeoutError) {
    return new BridgeError('GW_ERR_BACKEND_TIMEOUT', `backend did not answer in time (${code})`, { cause: err });
  }
  return new BridgeError('GW_ERR_BACKEND_UNREACHABLE', `backend unreachable (${code || (err as Error).message})`, { cause: err });
}

/**
 * bodyTimeout bounds each gap between chunks; the deadline, checked per chunk, bounds the whole
 * body, so a backend trickling bytes cannot hold a request open (and costs no timer per request).
 */
async function readLimited(body: AsyncIterable<Buffer>, limit: number, deadlineMs: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += chunk.length;
    if (total > limit) throw new BridgeError('GW_ERR_BACKEND_BAD_RESPONSE', `backend answer larger than ${limit} bytes`);
    if (performance.now() > deadlineMs) throw new BridgeError('GW_ERR_BACKEND_TIMEOUT', 'backend answer took longer than the timeout');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function encodeQueryPair(pair: string): string {
  const eq = pair.indexOf('=');
  if (eq === -1) return encodeURIComponent(pair);
  return `${encodeURIComponent(pair.slice(0, eq))}=${encodeURIComponent(pair.slice(eq + 1))}`;
}

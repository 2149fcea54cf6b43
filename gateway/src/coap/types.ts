/** A CoAP request as the gateway core sees it, independent of the socket it came from. */
export interface CoapRequest {
  /** 'GET' | 'POST' | 'PUT' | 'DELETE' | ... as node-coap names the method code. */
  method: string;
  /** The Uri-Path options, one segment each, exactly as sent (a segment may contain '/'). */
  segments: readonly string[];
  /** The segments joined for display and matching of fixed paths: '/' + each segment with '%' and '/' escaped. */
  path: string;
  /** The Uri-Query options, one `name=value` pair each. */
  query: readonly string[];
  payload: Buffer;
  /** Content-Format option number, if present. */
  contentFormat: number | undefined;
  accept: number | undefined;
  /** The Access-Token option (65003) as text, if present. */
  accessToken: string | undefined;
  peer: { address: string; port: number };
}

export interface CoapResponse {
  /** 'c.dd', e.g. '2.05'. */
  code: string;
  payload?: Buffer;
  contentFormat?: number;
  maxAgeSec?: number;
  /** RFC 7252 section 5.10.9: on 4.13, the largest request body the gateway takes. */
  size1Bytes?: number;
}

/** What one request taught us, for its log line; filled in as the request moves through the layers. */
export interface RequestContext {
  readonly requestId: string;
  deviceId?: string;
  route?: string;
  backendStatus?: number;
  /** Why it failed, for the log only (never sent to the device). */
  errorCode?: string;
  errorReason?: string;
}

export type RequestHandler = (request: CoapRequest, context: RequestContext) => Promise<CoapResponse>;

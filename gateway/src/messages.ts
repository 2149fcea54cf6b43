// The request and response the pipeline passes from the transport through auth to the bridge.
// They belong to none of those layers, so `auth` and `bridge` never import the transport.

export type CoapMethod = 'GET' | 'POST' | 'PUT' | 'DELETE' | 'FETCH' | 'PATCH' | 'iPATCH';

/** A CoAP request as the gateway core sees it, independent of the socket it came from. */
export interface CoapRequest {
  method: CoapMethod;
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
  /** ETag options of a GET (RFC 7252 section 5.10.6.2): representations the device already holds. */
  etags: readonly Buffer[];
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
  /** RFC 7252 section 5.10.6: at most 8 bytes. */
  etag?: Buffer;
  /** RFC 7252 section 5.10.7: where a created resource lives, one segment / one pair each. */
  locationPath?: readonly string[];
  locationQuery?: readonly string[];
  /** RFC 7252 section 5.10.9: on 4.13, the largest request body the gateway takes. */
  size1Bytes?: number;
}

/** What one request taught us, for its log line; filled in as the request moves through the layers. */
export interface RequestContext {
  readonly requestId: string;
  deviceId?: string;
  /**
   * Set once the request proved who sent it (a verified token, the right credentials). Only then
   * may its answer be larger than the request (RFC 7252 section 11.3); otherwise the transport
   * first makes sure of the source address (RFC 9175 section 2.4).
   */
  authenticated?: boolean;
  /** Set by the transport: the request carried an Echo value this gateway made for its address (RFC 9175). */
  addressProved?: boolean;
  /**
   * Set by a handler whose answer, whatever its size, must go only to a proved address (it costs
   * the gateway state: a login nonce). The transport then answers an unproved one with the Echo challenge.
   */
  needsProvedAddress?: boolean;
  route?: string;
  backendStatus?: number;
  /** Why it failed, for the log only (never sent to the device). */
  errorCode?: string;
  errorReason?: string;
}

/** What an admitted request may upload, and whether anyone authenticated it. */
export interface UploadLimits {
  maxBodyBytes: number;
  authenticated: boolean;
  /** Who the upload belongs to (the device id): each device gets a bounded number at once. */
  owner?: string;
}

/**
 * What the transport calls. `admit` runs every check that does not need the body (token, route,
 * method, scope, content format, declared size), so a block-wise upload is refused on its first
 * block before anything is buffered (RFC 7959 section 2.5); `handle` answers the whole request.
 * Both throw GatewayErrors, which the transport renders.
 */
export interface RequestHandler {
  admit(request: CoapRequest, context: RequestContext, declaredBytes: number | undefined): Promise<UploadLimits>;
  handle(request: CoapRequest, context: RequestContext): Promise<CoapResponse>;
}

// The request and response the pipeline passes from the transport through auth to the bridge,
// and what handling a request returns. They belong to none of those layers, so `auth` and
// `bridge` never import the transport.

export type CoapMethod = 'GET' | 'POST' | 'PUT' | 'DELETE' | 'FETCH' | 'PATCH' | 'iPATCH';

/** A CoAP request as the gateway core sees it, independent of the socket it came from. */
export interface CoapRequest {
  /** Names the request in every log line about it and in the backend's `x-request-id`. */
  id: string;
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
  /**
   * The Access-Token option (65003), one character per byte (latin1): a JWT's own characters, or
   * a CWT's bytes (first byte 0xd2). A string, so that it compares and hashes like any key.
   */
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

/**
 * How a principal proved itself: an access token it presented, the credentials of a login, or
 * its OSCORE security context alone (RFC 8613: the request verified under the device's context).
 */
export type AuthenticatedBy = 'access-token' | 'secret' | 'assertion' | 'refresh' | 'oscore';

/** Who sent a request, once something proved it. */
export interface Principal {
  readonly deviceId: string;
  readonly scopes: ReadonlySet<string>;
  readonly by: AuthenticatedBy;
  /** The request was protected end to end by the device's OSCORE context; absent: it came in clear. */
  readonly protection?: 'oscore';
}

/** What the layers below the pipeline found out about where a request came from. */
export interface RequestSource {
  /** The request carried an Echo value this gateway made for its address (RFC 9175 section 2.4). */
  readonly addressProved: boolean;
  /** Who a layer below proved the sender to be, before the pipeline looked: the OSCORE layer's device. */
  readonly principal?: Principal;
}

/** What handling a request found out, whatever came of it: for the layers below and the log line. */
export interface Learned {
  /**
   * Who the request proved to be. Only then may its answer be larger than the request (RFC 7252
   * section 11.3); otherwise the transport first makes sure of the source address (RFC 9175).
   */
  principal?: Principal;
  /** The device the request named, proved or not (a failed login names one), for the log. */
  deviceId?: string;
  route?: string;
  backendStatus?: number;
}

/**
 * A request's outcome: the answer, or the error the transport renders in its place (the device
 * learns the code, the log learns why). `provedAddressOnly`: the answer, whatever its size, holds
 * state kept for whoever asked (a login nonce), so it goes only to an address that proved it
 * receives there.
 */
export type Handled = Learned & { provedAddressOnly?: boolean } & (
  | { response: CoapResponse; error?: undefined }
  | { error: unknown; response?: undefined }
);

/** Whether a block-wise upload may start, and how large its body may grow. */
export type Admitted = Learned & (
  | { maxBodyBytes: number; error?: undefined }
  | { error: unknown; maxBodyBytes?: undefined }
);

/**
 * What the transport calls. `admit` runs every check that does not need the body (token, route,
 * method, scope, content format, declared size), so a block-wise upload is refused on its first
 * block before anything is buffered (RFC 7959 section 2.5); `handle` answers the whole request.
 * Both return their refusals as `error` (GatewayErrors, which the transport renders) beside what
 * they learned; a throw is treated as an error that learned nothing.
 */
export interface RequestHandler {
  admit(request: CoapRequest, source: RequestSource, declaredBytes: number | undefined): Promise<Admitted>;
  handle(request: CoapRequest, source: RequestSource): Promise<Handled>;
}

import { clampMaxAge } from '../max-age.ts';

/**
 * HTTP status -> CoAP response code, RFC 8075 section 7 and RFC 7252 section 10.1. Data, not
 * scattered ifs; the backend guide's status table is this table.
 */
export const HTTP_TO_COAP: ReadonlyMap<number, string> = new Map([
  [201, '2.01'],
  [204, '2.04'],
  [304, '2.03'],
  [400, '4.00'],
  // The backend refusing the gateway's forwarded credentials is a policy refusal for the device.
  [401, '4.03'],
  [403, '4.03'],
  [404, '4.04'],
  [405, '4.05'],
  [406, '4.06'],
  [412, '4.12'],
  [413, '4.13'],
  [415, '4.15'],
  [429, '4.29'],
  [500, '5.00'],
  [501, '5.01'],
  [502, '5.02'],
  [503, '5.03'],
  [504, '5.04'],
]);

/** 200 and other 2xx depend on the method: a GET got Content, a DELETE Deleted, others Changed. */
const SUCCESS_BY_METHOD: Readonly<Record<string, string>> = { GET: '2.05', FETCH: '2.05', DELETE: '2.02' };

export function coapCodeFor(status: number, method: string): string {
  const mapped = HTTP_TO_COAP.get(status);
  if (mapped !== undefined) return mapped;
  if (status >= 200 && status < 300) return SUCCESS_BY_METHOD[method] ?? '2.04';
  if (status >= 400 && status < 500) return '4.00';
  if (status >= 500 && status < 600) return '5.00';
  // 1xx and unhandled 3xx cannot be expressed in CoAP: the backend's answer was unusable.
  return '5.02';
}

// IMF-fixdate, obsolete RFC 850 and asctime forms: all start with a day name.
const HTTP_DATE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,? +[\w -]+ \d{2}:\d{2}:\d{2}( GMT| \d{4})$/;

/** Retry-After (seconds or HTTP-date, RFC 9110 section 10.2.3) -> Max-Age seconds, for 4.29 and 5.03; clamped to 4 bytes. */
export function retryAfterToMaxAge(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return clampMaxAge(Number(trimmed));
  // Only the HTTP-date forms (RFC 9110 section 5.6.7): Date.parse would also take "1.5" or "-5".
  if (!HTTP_DATE.test(trimmed)) return undefined;
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return clampMaxAge((at - nowMs) / 1000);
}

/** Cache-Control max-age -> Max-Age for successful answers (RFC 8075 section 6.2). */
export function cacheControlToMaxAge(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (/\b(no-store|no-cache|private)\b/i.test(value)) return 0;
  const m = /\bmax-age=(\d+)/i.exec(value);
  return m ? clampMaxAge(Number(m[1])) : undefined;
}

import type { CoapResponse } from '../messages.ts';

/** RFC 7252 section 3.2: an option value is at most 255 bytes. */
const MAX_OPTION_BYTES = 255;

export type LocationOptions = Required<Pick<CoapResponse, 'locationPath' | 'locationQuery'>>;

/**
 * An HTTP Location -> Location-Path and Location-Query options (RFC 7252 section 5.10.7),
 * split and percent-decoded as RFC 7252 section 6.4 decomposes a URI. A relative reference
 * resolves against the URL the request went to (RFC 9110 section 10.2.2). Only a location on
 * the backend's origin is expressible to the device; the backend URL's path prefix is removed.
 * Returns undefined when the location is unusable: another origin, unparseable, or a segment
 * longer than one option can carry.
 */
export function locationOptionsFor(location: string, requestUrl: URL, prefix: string): LocationOptions | undefined {
  let url: URL;
  try {
    url = new URL(location, requestUrl);
  } catch {
    return undefined;
  }
  if (url.origin !== requestUrl.origin) return undefined;
  let path = url.pathname;
  if (prefix !== '' && (path === prefix || path.startsWith(`${prefix}/`))) path = path.slice(prefix.length) || '/';
  // RFC 7252 section 6.4 step 8: a path of "" or "/" has no Location-Path option.
  const rawSegments = path === '/' ? [] : path.slice(1).split('/');
  const rawPairs = url.search === '' ? [] : url.search.slice(1).split('&');
  let locationPath: string[];
  let locationQuery: string[];
  try {
    locationPath = rawSegments.map(decodeURIComponent);
    locationQuery = rawPairs.map(decodeURIComponent);
  } catch {
    return undefined;
  }
  const tooLong = (value: string) => Buffer.byteLength(value, 'utf8') > MAX_OPTION_BYTES;
  if (locationPath.some(tooLong) || locationQuery.some(tooLong)) return undefined;
  return { locationPath, locationQuery };
}

import type { RouteConfig } from './config/index.ts';
import { ContentFormat, Paths } from './wire/index.ts';

/**
 * RFC 6690 link format of the gateway's resources. A templated route is listed by its literal
 * prefix, with the full pattern and methods in its title, since link targets must be URIs.
 */
export function linkFormat(routes: readonly RouteConfig[]): string {
  const links = [
    `<${Paths.auth}>;rt="gw.auth";ct=${ContentFormat.cbor};title="POST device login"`,
    `<${Paths.refresh}>;rt="gw.auth.refresh";ct=${ContentFormat.cbor};title="POST token refresh"`,
  ];
  for (const route of routes) {
    const literal = route.path.split('/{')[0] || '/';
    // Methods and pattern help firmware authors; scopes stay out (policy, not discovery).
    links.push(`<${literal}>;rt="gw.bridge";ct=${ContentFormat.cbor};title="${route.methods.join(' ')} ${route.path}"`);
  }
  return links.join(',');
}

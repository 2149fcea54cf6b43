import type { RouteConfig } from '../config/index.ts';

export interface RouteMatch {
  route: RouteConfig;
  params: Record<string, string>;
}

interface CompiledRoute {
  route: RouteConfig;
  segments: { literal?: string; param?: string }[];
}

/** Routes compiled once at start; matching is a walk over path segments, no regex per request. */
export function createRouter(routes: readonly RouteConfig[]) {
  const compiled: CompiledRoute[] = routes.map((route) => ({
    route,
    segments: route.path.split('/').slice(1).map((s) => {
      const m = /^\{(\w+)\}$/.exec(s);
      return m ? { param: m[1] } : { literal: s };
    }),
  }));

  return {
    /** Matches Uri-Path segments; a parameter never matches '', '.' or '..'. */
    match(parts: readonly string[]): RouteMatch | undefined {
      for (const { route, segments } of compiled) {
        if (segments.length !== parts.length) continue;
        const params: Record<string, string> = {};
        let ok = true;
        for (let i = 0; i < segments.length && ok; i += 1) {
          const segment = segments[i]!;
          const part = parts[i]!;
          if (segment.param !== undefined) {
            // '.' and '..' would let a device climb out of the backend path template once a
            // proxy or the backend normalises the path (RFC 3986 section 5.2.4).
            if (part === '' || part === '.' || part === '..') ok = false;
            else params[segment.param] = part;
          } else {
            ok = segment.literal === part;
          }
        }
        if (ok) return { route, params };
      }
      return undefined;
    },
    routes: (): readonly RouteConfig[] => routes,
  };
}

export type Router = ReturnType<typeof createRouter>;

/** Fills a backend path template; every value is percent-encoded as one path segment. */
export function fillTemplate(template: string, values: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(values[name] ?? ''));
}

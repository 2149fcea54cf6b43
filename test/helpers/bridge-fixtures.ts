import type { ServerResponse } from 'node:http';
import { DEFAULT_ROUTES, type RouteConfig } from '../../gateway/src/config/index.ts';
import type { BackendHandler } from './test-backend.ts';

/** The default routes plus one that takes every method, so 2.02 (DELETE) can be mapped too. */
export const BRIDGE_ROUTES: readonly RouteConfig[] = [
  ...DEFAULT_ROUTES,
  { path: '/things/{name}', methods: ['GET', 'POST', 'PUT', 'DELETE'], scope: 'things:rw', backendPath: '/things/{sub}/{name}', body: 'cbor-json' },
];

export const BRIDGE_SCOPES = ['telemetry:write', 'config:read', 'things:rw'];

/** Answers like a healthy backend: 200 with a small JSON body. */
export const okHandler: BackendHandler = (req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, path: req.url }));
};

/** A handler that keeps every answer until the test calls `release()`: a slow backend, without sleeping. */
export function holdingHandler(answer: BackendHandler = okHandler): { handler: BackendHandler; release: () => void } {
  let release!: () => void;
  const released = new Promise<void>((resolve) => { release = resolve; });
  return {
    release,
    handler: async (req, res: ServerResponse) => {
      await released;
      await answer(req, res);
    },
  };
}

/** CBOR maps decoded with `mapsAsObjects: false` -> plain values, for `t.same` against JSON. */
export function plain(value: unknown): unknown {
  if (value instanceof Map) return Object.fromEntries([...value].map(([k, v]) => [String(k), plain(v)]));
  if (Array.isArray(value)) return value.map(plain);
  return value;
}

import { z } from 'zod';
import { quote } from './fields.ts';
import { BODY_MODES, COAP_METHODS, type CoapMethod } from './values.ts';

const METHODS_EXPECTED = `expected a non-empty list of ${COAP_METHODS.join(', ')}`;

const isMethodList = (list: unknown[]): list is CoapMethod[] =>
  list.length > 0 && list.every((method) => COAP_METHODS.includes(method as CoapMethod));

/** `{name}` placeholders of a path or a path template. */
const placeholders = (template: string): string[] => [...template.matchAll(/\{(\w+)\}/g)].map((match) => match[1]!);

const pathExpected = (issue: { input?: unknown }) => `expected an absolute CoAP path like /telemetry/{name}, got ${quote(issue.input)}`;
const scopeExpected = 'expected one scope name';
const backendPathExpected = 'expected a path starting with /';

const route = z.strictObject({
  /** CoAP path pattern, `{name}` matches one segment. */
  path: z.string({ error: pathExpected }).regex(/^(\/[^/?#\s]+)+$/, { error: pathExpected }),
  methods: z.array(z.unknown(), { error: METHODS_EXPECTED }).refine(isMethodList, { error: METHODS_EXPECTED }),
  /** Scope the device's token must carry. */
  scope: z.string({ error: scopeExpected }).regex(/^\S+$/, { error: scopeExpected }),
  /** Backend path template: `{sub}` is the device id, other `{names}` come from the CoAP path. */
  backendPath: z.string({ error: backendPathExpected }).startsWith('/', { error: backendPathExpected }),
  /** `cbor-json`: CBOR request bodies become JSON, JSON answers become CBOR. */
  body: z.enum(BODY_MODES, { error: `expected ${BODY_MODES.join(' or ')}` }).prefault('cbor-json'),
}, {
  error: (issue) => `expected a route {"path", "methods", "scope", "backendPath", "body"}, got ${quote(issue.input)}`,
}).superRefine((checked, ctx) => {
  // `{sub}` is the device id; every other placeholder must come from the CoAP path.
  const fromPath = new Set(placeholders(checked.path));
  for (const name of placeholders(checked.backendPath)) {
    if (name !== 'sub' && !fromPath.has(name)) {
      ctx.addIssue({ code: 'custom', path: ['backendPath'], input: checked.backendPath, message: `{${name}} is not in the CoAP path` });
    }
  }
});

/** The bridged routes: each problem is named by the route's index and field. */
export const ROUTES_SETTING = z.array(route, { error: 'expected a non-empty array of routes' })
  .min(1, { error: 'expected a non-empty array of routes' });

export type RouteConfig = z.output<typeof route>;

/** The routes of a config that gives none. */
export const DEFAULT_ROUTES: readonly RouteConfig[] = [
  {
    path: '/telemetry/{name}',
    methods: ['POST', 'PUT'],
    scope: 'telemetry:write',
    backendPath: '/devices/{sub}/telemetry/{name}',
    body: 'cbor-json',
  },
  {
    path: '/config',
    methods: ['GET'],
    scope: 'config:read',
    backendPath: '/devices/{sub}/config',
    body: 'cbor-json',
  },
];

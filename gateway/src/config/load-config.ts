import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { ConfigError } from '../errors.ts';
import { DEFAULTS, DEFAULT_ROUTES } from './defaults.ts';
import {
  COAP_METHODS, CONFIG_KEYS, LOG_LEVELS, SIGNING_ALGS,
  type CoapMethod, type ConfigInput, type GatewayConfig, type LogLevel, type RouteConfig, type SigningAlg,
} from './schema.ts';

/** Reads a JSON config file; its problems are reported like any other config problem. */
export function readConfigFile(file: string): ConfigInput {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`--config ${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? 'error'})`]);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError([`--config ${file}: not valid JSON (${(err as Error).message})`]);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError([`--config ${file}: must be a JSON object`]);
  }
  return parsed as ConfigInput;
}

/**
 * Validates file settings overlaid with flags, reports every problem in one ConfigError, and
 * returns a deeply frozen config. Flags win over the file.
 */
export function loadConfig(fileInput: ConfigInput, flagInput: ConfigInput = {}): GatewayConfig {
  const problems: string[] = [];
  for (const key of Object.keys(fileInput)) {
    if (!CONFIG_KEYS.includes(key as keyof ConfigInput)) problems.push(`unknown setting "${key}"`);
  }
  const input: ConfigInput = { ...fileInput };
  for (const [key, value] of Object.entries(flagInput)) {
    if (value !== undefined) (input as Record<string, unknown>)[key] = value;
  }
  const v = createValidator(problems);

  const coapHost = v.host('coapHost', input.coapHost ?? DEFAULTS.coapHost);
  const config: GatewayConfig = {
    coap: {
      host: coapHost,
      port: v.int('coapPort', input.coapPort ?? DEFAULTS.coapPort, 0, 65535),
      piggybackReplyMs: v.int('piggybackReplyMs', input.piggybackReplyMs ?? DEFAULTS.piggybackReplyMs, 0, 60_000),
      exchangeLifetimeSec: v.int('exchangeLifetimeSec', input.exchangeLifetimeSec ?? DEFAULTS.exchangeLifetimeSec, 1, 3600),
      maxExchanges: v.int('maxExchanges', input.maxExchanges ?? DEFAULTS.maxExchanges, 100, 10_000_000),
      maxPayloadBytes: v.int('maxPayloadBytes', input.maxPayloadBytes ?? DEFAULTS.maxPayloadBytes, 64, 1024 * 1024),
      udpRecvBufferBytes: v.int('udpRecvBufferBytes', input.udpRecvBufferBytes ?? DEFAULTS.udpRecvBufferBytes, 4096, 1 << 30),
      responseCacheBytes: v.int('responseCacheBytes', input.responseCacheBytes ?? DEFAULTS.responseCacheBytes, 1024, 1 << 30),
      blockBufferBytes: v.int('blockBufferBytes', input.blockBufferBytes ?? DEFAULTS.blockBufferBytes, 1024, 1 << 30),
      blockLifetimeSec: v.int('blockLifetimeSec', input.blockLifetimeSec ?? DEFAULTS.blockLifetimeSec, 1, 3600),
      representationBytes: v.int('representationBytes', input.representationBytes ?? DEFAULTS.representationBytes, 1024, 1 << 30),
    },
    backend: {
      url: v.backendUrl('backend', input.backend),
      caFile: v.optionalFile('backendCa', input.backendCa),
      timeoutMs: v.int('backendTimeoutMs', input.backendTimeoutMs ?? DEFAULTS.backendTimeoutMs, 1, 600_000),
      connections: v.int('backendConnections', input.backendConnections ?? DEFAULTS.backendConnections, 1, 10_000),
    },
    stateDir: v.text('state', input.state ?? DEFAULTS.stateDir),
    tokens: {
      issuer: v.text('issuer', input.issuer ?? DEFAULTS.issuer),
      audience: v.text('audience', input.audience ?? DEFAULTS.audience),
      ttlSec: v.int('tokenTtl', input.tokenTtl ?? DEFAULTS.tokenTtlSec, 1, 30 * 24 * 3600),
      refreshTtlSec: v.int('refreshTtl', input.refreshTtl ?? DEFAULTS.refreshTtlSec, 1, 365 * 24 * 3600),
      leewaySec: v.int('leeway', input.leeway ?? DEFAULTS.leewaySec, 0, 3600),
      signingAlg: v.oneOf('signingAlg', input.signingAlg ?? DEFAULTS.signingAlg, SIGNING_ALGS) as SigningAlg,
    },
    auth: {
      loginFailuresPerMinute: v.int(
        'loginFailuresPerMinute', input.loginFailuresPerMinute ?? DEFAULTS.loginFailuresPerMinute, 1, 1_000_000),
      forgedTokensPerMinute: v.int(
        'forgedTokensPerMinute', input.forgedTokensPerMinute ?? DEFAULTS.forgedTokensPerMinute, 1, 1_000_000),
    },
    routes: v.routes('routes', input.routes ?? DEFAULT_ROUTES),
    logLevel: v.oneOf('logLevel', input.logLevel ?? DEFAULTS.logLevel, LOG_LEVELS) as LogLevel,
    admin: {
      host: v.loopback('adminHost', input.adminHost ?? DEFAULTS.adminHost),
      port: input.adminPort === undefined ? undefined : v.int('adminPort', input.adminPort, 0, 65535),
      certFile: String(input.adminCert ?? DEFAULTS.adminCertFile),
      keyFile: String(input.adminKey ?? DEFAULTS.adminKeyFile),
      caFile: String(input.adminCa ?? DEFAULTS.adminCaFile),
      jwksPort: input.jwksPort === undefined ? undefined : v.int('jwksPort', input.jwksPort, 0, 65535),
    },
  };
  if (config.admin.port !== undefined) {
    for (const [name, file] of [['adminCert', config.admin.certFile], ['adminKey', config.admin.keyFile], ['adminCa', config.admin.caFile]]) {
      v.optionalFile(`${name!} (admin API on; run \`make certs\`)`, file);
    }
  }
  // Each upload sets aside room for its whole body when it starts (its Size1, else maxPayloadBytes).
  if (config.coap.blockBufferBytes < 2 * config.coap.maxPayloadBytes) {
    problems.push(`blockBufferBytes: must be at least twice maxPayloadBytes (${2 * config.coap.maxPayloadBytes}), got ${config.coap.blockBufferBytes}`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return deepFreeze(config);
}

function createValidator(problems: string[]) {
  const fail = <T>(message: string, fallback: T): T => {
    problems.push(message);
    return fallback;
  };
  return {
    int(name: string, raw: unknown, min: number, max: number): number {
      const value = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
      if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
        return fail(`${name}: expected a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`, min);
      }
      return value;
    },
    text(name: string, raw: unknown): string {
      if (typeof raw !== 'string' || raw.trim() === '') return fail(`${name}: expected a non-empty string`, '');
      return raw;
    },
    oneOf(name: string, raw: unknown, allowed: readonly string[]): string {
      if (typeof raw !== 'string' || !allowed.includes(raw)) {
        return fail(`${name}: expected one of ${allowed.join(', ')}, got ${JSON.stringify(raw)}`, allowed[0] ?? '');
      }
      return raw;
    },
    host(name: string, raw: unknown): string {
      if (typeof raw !== 'string' || (isIP(raw) === 0 && raw !== 'localhost')) {
        return fail(`${name}: expected an IPv4 or IPv6 address (or localhost), got ${JSON.stringify(raw)}`, '');
      }
      return raw === 'localhost' ? '127.0.0.1' : raw;
    },
    loopback(name: string, raw: unknown): string {
      const host = this.host(name, raw);
      if (host !== '' && !/^127\./.test(host) && host !== '::1') {
        return fail(`${name}: the admin API listens on loopback only (127.0.0.1 or ::1), got ${JSON.stringify(raw)}`, '');
      }
      return host;
    },
    backendUrl(name: string, raw: unknown): string {
      if (raw === undefined) return fail(`${name}: required (the backend's base URL, http:// or https://)`, '');
      let url: URL;
      try {
        url = new URL(String(raw));
      } catch {
        return fail(`${name}: not a URL: ${JSON.stringify(raw)}`, '');
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        return fail(`${name}: must be http:// or https://, got ${url.protocol}`, '');
      }
      return url.href.replace(/\/$/, '');
    },
    optionalFile(name: string, raw: unknown): string | undefined {
      if (raw === undefined) return undefined;
      if (typeof raw !== 'string' || raw === '') return fail(`${name}: expected a file path`, undefined);
      try {
        readFileSync(raw);
      } catch {
        return fail(`${name}: cannot read ${raw}`, undefined);
      }
      return raw;
    },
    routes(name: string, raw: unknown): RouteConfig[] {
      if (!Array.isArray(raw) || raw.length === 0) return fail(`${name}: expected a non-empty array of routes`, []);
      return raw.map((route, i) => validateRoute(`${name}[${i}]`, route, problems));
    },
  };
}

function validateRoute(where: string, raw: unknown, problems: string[]): RouteConfig {
  const r = (raw ?? {}) as Record<string, unknown>;
  const start = problems.length;
  if (typeof r.path !== 'string' || !/^(\/[^/?#\s]+)+$/.test(r.path)) {
    problems.push(`${where}.path: expected an absolute CoAP path like /telemetry/{name}`);
  }
  const methods = Array.isArray(r.methods) ? r.methods : [];
  if (methods.length === 0 || !methods.every((m) => COAP_METHODS.includes(m as CoapMethod))) {
    problems.push(`${where}.methods: expected a non-empty list of ${COAP_METHODS.join(', ')}`);
  }
  if (typeof r.scope !== 'string' || !/^\S+$/.test(r.scope)) problems.push(`${where}.scope: expected one scope name`);
  if (typeof r.backendPath !== 'string' || !r.backendPath.startsWith('/')) {
    problems.push(`${where}.backendPath: expected a path starting with /`);
  }
  const body = r.body ?? 'cbor-json';
  if (body !== 'cbor-json' && body !== 'pass-through') {
    problems.push(`${where}.body: expected cbor-json or pass-through`);
  }
  if (problems.length === start && typeof r.path === 'string' && typeof r.backendPath === 'string') {
    const pathVars = new Set([...r.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]));
    for (const [, v] of r.backendPath.matchAll(/\{(\w+)\}/g)) {
      if (v !== 'sub' && !pathVars.has(v)) problems.push(`${where}.backendPath: {${v}} is not in the CoAP path`);
    }
  }
  return {
    path: String(r.path), methods: [...methods] as CoapMethod[], scope: String(r.scope),
    backendPath: String(r.backendPath), body: body as RouteConfig['body'],
  };
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

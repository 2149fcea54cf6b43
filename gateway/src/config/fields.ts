import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { z } from 'zod';

// The kinds of setting, each a zod schema whose problem says what it expected and what it got.
// The setting's name is added in front when the problem is reported.

/** How a problem quotes what it got: as JSON, so that "5" (text, from a flag) differs from 5. */
export function quote(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
}

/** A URL may carry a password: problems show it as ***, since they end up on terminals and in logs. */
export function withoutPassword(url: string): string {
  return url.replace(/^([^:/]+:\/\/[^:@/]*:)[^@]*@/, '$1***@');
}

/** A whole number from `min` to `max`; text such as "5684" counts, since flags are text. */
export function wholeNumber(min: number, max: number) {
  return z.unknown().transform((raw, ctx) => {
    const value = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
    if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) return value;
    ctx.issues.push({ code: 'custom', input: raw, message: `expected a whole number from ${min} to ${max}, got ${quote(raw)}` });
    return z.NEVER;
  });
}

export function nonEmptyText() {
  const error = 'expected a non-empty string';
  return z.string({ error }).refine((text) => text.trim() !== '', { error });
}

export function oneOf<const Values extends readonly [string, ...string[]]>(values: Values) {
  return z.enum(values, { error: (issue) => `expected one of ${values.join(', ')}, got ${quote(issue.input)}` });
}

/** An IP address to listen on; `localhost` means 127.0.0.1, whatever the resolver would say. */
export function ipAddress() {
  const error = (issue: { input?: unknown }) => `expected an IPv4 or IPv6 address (or localhost), got ${quote(issue.input)}`;
  return z.string({ error })
    .refine((text) => text === 'localhost' || isIP(text) !== 0, { error })
    .transform((text) => (text === 'localhost' ? '127.0.0.1' : text));
}

/** An address on loopback only: what the admin API may listen on. */
export function loopbackAddress() {
  return ipAddress().refine(isLoopback, {
    error: (issue) => `the admin API listens on loopback only (127.0.0.1 or ::1), got ${quote(issue.input)}`,
  });
}

/** An http:// or https:// base URL, without its trailing slash (route paths start with one). */
export function httpUrl(purpose: string) {
  return z.unknown().transform((raw, ctx) => {
    const problem = (message: string) => {
      ctx.issues.push({ code: 'custom', input: raw, message });
      return z.NEVER;
    };
    if (raw === undefined) return problem(`required (${purpose}, http:// or https://)`);
    let url: URL;
    try {
      url = new URL(String(raw));
    } catch {
      return problem(`expected an http:// or https:// URL, got ${quote(typeof raw === 'string' ? withoutPassword(raw) : raw)}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return problem(`must be http:// or https://, got ${url.protocol}`);
    return url.href.replace(/\/$/, '');
  });
}

export function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1';
}

/** A file that must be readable now, at start-up, not at the first request that needs it. */
export function readableFile() {
  return z.string({ error: (issue) => `expected a file path, got ${quote(issue.input)}` })
    .refine((file) => file !== '', { error: 'expected a file path, got ""' })
    .refine(canRead, { error: (issue) => `cannot read ${String(issue.input)}` });
}

export function canRead(file: string): boolean {
  try {
    readFileSync(file);
    return true;
  } catch {
    return false;
  }
}

import { z } from 'zod';
import { DEVICE_ID_PATTERN, SCOPE_PATTERN } from '../auth/index.ts';
import { AdminError, ERRORS, type AdminErrorCode } from '../errors.ts';

// What an operator may give the CLI and the admin API, as zod schemas whose problems carry the
// admin error code each is reported as, with the message the operator reads.

/** The scopes of a device provisioned without any. */
export const DEFAULT_DEVICE_SCOPES: readonly string[] = ['telemetry:write'];

/** A value whose problems are the admin error `code`, each with its schema's message. */
export function coded<S extends z.ZodType>(code: AdminErrorCode, schema: S) {
  return z.unknown().transform((raw, ctx): z.output<S> => {
    const result = schema.safeParse(raw);
    if (result.success) return result.data;
    for (const issue of result.error.issues) {
      ctx.issues.push({ code: 'custom', input: raw, path: issue.path, message: issue.message, params: { adminCode: code } });
    }
    return z.NEVER;
  });
}

const isAdminCode = (code: unknown): code is AdminErrorCode =>
  typeof code === 'string' && code.startsWith('GW_ERR_ADMIN_') && Object.hasOwn(ERRORS, code);

/**
 * The value as `schema` reads it, or the AdminError of its first problem: the code its field
 * carries, else GW_ERR_ADMIN_BAD_BODY (a body that is not the object it should be).
 */
export function parseAdmin<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const [issue] = result.error.issues;
  const code = issue?.code === 'custom' ? issue.params?.adminCode : undefined;
  throw new AdminError(isAdminCode(code) ? code : 'GW_ERR_ADMIN_BAD_BODY', issue?.message ?? 'the body must be a JSON object');
}

export const DEVICE_ID = coded('GW_ERR_ADMIN_BAD_DEVICE_ID', z.unknown().refine(
  (id): id is string => typeof id === 'string' && DEVICE_ID_PATTERN.test(id),
  { error: (issue) => `bad device id ${JSON.stringify(issue.input)}: use 1-64 letters, digits and . _ : -, starting with a letter or digit` },
));

/** Scopes as a list, or one text of them separated by spaces or commas; each once. */
export const SCOPES = coded('GW_ERR_ADMIN_BAD_SCOPE', z.unknown().transform((raw, ctx) => {
  const given = typeof raw === 'string' ? [raw] : raw;
  if (!Array.isArray(given) || !given.every((scope) => typeof scope === 'string')) {
    ctx.issues.push({ code: 'custom', input: raw, message: `bad scope(s): ${JSON.stringify(raw)?.slice(0, 64)} (expected text or a list of text)` });
    return z.NEVER;
  }
  const flat = given.flatMap((scope) => scope.split(/[\s,]+/)).filter(Boolean);
  const bad = flat.filter((scope) => !SCOPE_PATTERN.test(scope));
  if (flat.length === 0 || bad.length > 0) {
    ctx.issues.push({ code: 'custom', input: raw, message: `bad scope(s): ${bad.join(', ') || '(none given)'}` });
    return z.NEVER;
  }
  return [...new Set(flat)];
}));

/** A device's default access-token format. */
export const TOKEN_FORMAT = coded('GW_ERR_ADMIN_BAD_TOKEN_FORMAT', z.enum(['jwt', 'cwt'], {
  error: (issue) => `token format must be "jwt" or "cwt", got ${JSON.stringify(String(issue.input).slice(0, 16))}`,
}));

/** Whether a device is refused without OSCORE: `oscore` (required) or `any` (the default: either way). */
export const SECURITY = coded('GW_ERR_ADMIN_BAD_BODY', z.enum(['oscore', 'any'], {
  error: (issue) => `security must be "oscore" or "any", got ${JSON.stringify(String(issue.input).slice(0, 16))}`,
}));

export const JTI = coded('GW_ERR_ADMIN_BAD_JTI', z.unknown().refine(
  (jti): jti is string => typeof jti === 'string' && /^[A-Za-z0-9._:-]{1,64}$/.test(jti),
  { error: (issue) => `bad jti ${JSON.stringify(String(issue.input).slice(0, 64))}: a token's jti is 1-64 of letters, digits and . _ : -` },
));

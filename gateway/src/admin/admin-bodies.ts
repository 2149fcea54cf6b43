import { z } from 'zod';
import { DEFAULTS, SIGNING_ALGS } from '../config/index.ts';
import { DEFAULT_DEVICE_SCOPES, DEVICE_ID, SCOPES, TOKEN_FORMAT, coded } from './admin-fields.ts';

// One schema per request body of the admin API. A missing body reads as {}; unknown keys are
// ignored; each problem is reported as its field's admin error (see `parseAdmin`).

const NOT_AN_OBJECT = 'the body must be a JSON object';

const expires = coded('GW_ERR_ADMIN_BAD_KEY', z.string({ error: '"expires" must be an ISO 8601 date string' })).optional();

/** POST /keys/rotate */
export const ROTATE_BODY = z.object({
  alg: coded('GW_ERR_ADMIN_BAD_ALG', z.enum(SIGNING_ALGS, {
    error: (issue) => `unsupported alg ${JSON.stringify(issue.input)}: use ${SIGNING_ALGS.join(' or ')}`,
  })).prefault(DEFAULTS.signingAlg),
}, { error: NOT_AN_OBJECT });

/** POST /devices: a device with a secret (the default), a public key, or both. */
export const NEW_DEVICE_BODY = z.object({
  secret: coded('GW_ERR_ADMIN_BAD_KEY', z.boolean({
    error: '"secret" must be true or false (default: a secret only for a device given no publicKey)',
  })).optional(),
  /** PEM text or a JWK, read by parseDevicePublicKey. */
  publicKey: z.unknown().optional(),
  expires,
  scopes: SCOPES.prefault(DEFAULT_DEVICE_SCOPES),
  tokenFormat: TOKEN_FORMAT.optional(),
  id: DEVICE_ID,
}, { error: NOT_AN_OBJECT }).superRefine((body, ctx) => {
  if (body.publicKey === undefined && (body.expires !== undefined || body.secret === false)) {
    ctx.addIssue({
      code: 'custom', input: body, params: { adminCode: 'GW_ERR_ADMIN_BAD_KEY' },
      message: '"expires" and "secret": false go with "publicKey": a device needs a secret or a public key',
    });
  }
});

/** POST /devices/ID/keys */
export const NEW_KEY_BODY = z.object({
  publicKey: coded('GW_ERR_ADMIN_BAD_KEY', z.unknown().refine((key) => key !== undefined, {
    error: 'the body needs "publicKey": PEM text or a JWK',
  })),
  expires,
}, { error: NOT_AN_OBJECT });

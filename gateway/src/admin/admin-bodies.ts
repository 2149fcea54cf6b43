import { z } from 'zod';
import { DEFAULTS, SIGNING_ALGS } from '../config/index.ts';
import { DEFAULT_DEVICE_SCOPES, DEVICE_ID, SCOPES, SECURITY, TOKEN_FORMAT, coded } from './admin-fields.ts';

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

const oscoreFlag = (name: string, what: string) => coded('GW_ERR_ADMIN_BAD_BODY', z.boolean({ error: `"${name}" must be true or false (${what})` })).optional();

/** POST /devices: a device with a secret (the default), a public key, an OSCORE context, or more than one. */
export const NEW_DEVICE_BODY = z.object({
  secret: coded('GW_ERR_ADMIN_BAD_KEY', z.boolean({
    error: '"secret" must be true or false (default: a secret only for a device given no publicKey and no OSCORE context)',
  })).optional(),
  /** Make the device an OSCORE context, answered once. */
  oscore: oscoreFlag('oscore', 'true makes the device an OSCORE context, answered once'),
  security: SECURITY.optional(),
  /** PEM text or a JWK, read by parseDevicePublicKey. */
  publicKey: z.unknown().optional(),
  expires,
  scopes: SCOPES.prefault(DEFAULT_DEVICE_SCOPES),
  tokenFormat: TOKEN_FORMAT.optional(),
  id: DEVICE_ID,
}, { error: NOT_AN_OBJECT }).superRefine((body, ctx) => {
  if (body.publicKey === undefined && body.expires !== undefined) {
    ctx.addIssue({ code: 'custom', input: body, params: { adminCode: 'GW_ERR_ADMIN_BAD_KEY' }, message: '"expires" must go with "publicKey"' });
  }
  if (body.publicKey === undefined && body.oscore !== true && body.secret === false) {
    ctx.addIssue({
      code: 'custom', input: body, params: { adminCode: 'GW_ERR_ADMIN_BAD_KEY' },
      message: '"secret": false goes with "publicKey" or "oscore": true: a device needs a secret or a public key, or an OSCORE context',
    });
  }
});

/** POST /devices/ID/oscore: a context for a device that has none, or with rotate a new one; or only `security`. */
export const OSCORE_BODY = z.object({
  rotate: oscoreFlag('rotate', 'true replaces the device\'s context; the device then needs the new one'),
  security: SECURITY.optional(),
}, { error: NOT_AN_OBJECT });

/** POST /devices/ID/keys */
export const NEW_KEY_BODY = z.object({
  publicKey: coded('GW_ERR_ADMIN_BAD_KEY', z.unknown().refine((key) => key !== undefined, {
    error: 'the body needs "publicKey": PEM text or a JWK',
  })),
  expires,
}, { error: NOT_AN_OBJECT });

import t from 'tap';
import {
  AdminError, ConfigError, ERRORS, ERROR_TABLE, GatewayError, OperatorError, type AdminErrorCode, type ErrorCode,
} from '../../gateway/src/errors.ts';

const codes = Object.keys(ERRORS) as ErrorCode[];

t.test('every row: an HTTP status; a device\'s rows a CoAP code and a wire code, an operator\'s an exit code', async (t) => {
  for (const code of codes) {
    const row: { coap?: string; http: number; wire?: number; exit?: number } = ERRORS[code];
    t.ok(row.http >= 400 && row.http <= 599, `${code}: HTTP ${row.http}`);
    t.equal(row.coap === undefined, row.wire === undefined, `${code}: a CoAP code exactly when a wire code`);
    if (row.coap === undefined) t.ok(row.exit !== undefined && row.exit > 0, `${code}: no device sees it, so a command ends with it`);
  }
  t.match(codes.filter((code) => code.startsWith('GW_ERR_ADMIN_')).map((code) => ERRORS[code]), Array(8).fill({ exit: 2 }));
  t.same(ERRORS.GW_ERR_CONFIG, { http: 400, exit: 2 });
});

t.test('ERROR_TABLE is the rows a device can see, taken from the one table', async (t) => {
  const seen = codes.filter((code) => 'wire' in ERRORS[code]);
  t.same(Object.keys(ERROR_TABLE), seen);
  for (const code of seen) t.equal(ERROR_TABLE[code as keyof typeof ERROR_TABLE], ERRORS[code], code);
  t.notOk('GW_ERR_ADMIN_STATE' in ERROR_TABLE, 'no admin row');
  t.ok('GW_ERR_STORE_UNAVAILABLE' in ERROR_TABLE);
});

t.test('AdminError: its code\'s HTTP status (what the admin API answered before) and exit code', async (t) => {
  const statuses: Record<AdminErrorCode, number> = {
    GW_ERR_ADMIN_BAD_DEVICE_ID: 400, GW_ERR_ADMIN_BAD_SCOPE: 400, GW_ERR_ADMIN_BAD_ALG: 400, GW_ERR_ADMIN_DUPLICATE_DEVICE: 409,
    GW_ERR_ADMIN_UNKNOWN_DEVICE: 404, GW_ERR_ADMIN_UNKNOWN_KEY: 404, GW_ERR_ADMIN_ONLY_ACTIVE_KEY: 409, GW_ERR_ADMIN_STATE: 409,
    GW_ERR_ADMIN_BAD_KEY: 400, GW_ERR_ADMIN_BAD_JTI: 400, GW_ERR_ADMIN_BAD_TOKEN_FORMAT: 400, GW_ERR_ADMIN_TOO_MANY_KEYS: 409, GW_ERR_ADMIN_DUPLICATE_KEY: 409,
    GW_ERR_ADMIN_LAST_CREDENTIAL: 409, GW_ERR_ADMIN_CONFLICT: 409,
    GW_ERR_ADMIN_NOT_FOUND: 404, GW_ERR_ADMIN_METHOD_NOT_ALLOWED: 405, GW_ERR_ADMIN_BODY_TOO_LARGE: 413, GW_ERR_ADMIN_BAD_JSON: 400,
    GW_ERR_ADMIN_BAD_BODY: 400, GW_ERR_ADMIN_INTERNAL: 500,
  };
  for (const [code, status] of Object.entries(statuses) as [AdminErrorCode, number][]) {
    const err = new AdminError(code, `why ${code}`);
    t.equal(err.httpStatus, status, `${code}: ${status}`);
    const exit = code === 'GW_ERR_ADMIN_INTERNAL' ? 1 : 2;
    t.equal(err.exitCode, exit, `${code}: exit ${exit}`);
    t.equal(err.code, code);
    t.equal(err.message, `why ${code}`);
  }
  const err = new AdminError('GW_ERR_ADMIN_DUPLICATE_DEVICE', 'device "a" already exists');
  t.equal(err.name, 'AdminError');
  t.ok(err instanceof OperatorError, 'an OperatorError, which main.ts turns into its exit code');
  t.notOk((err as unknown) instanceof GatewayError, 'not a GatewayError: renderError never sends it to a device');
});

t.test('ConfigError: every problem in one message, code GW_ERR_CONFIG, exit 2', async (t) => {
  const err = new ConfigError(['coapPort: expected a whole number', 'unknown setting "x"']);
  t.equal(err.message, 'invalid configuration:\n  - coapPort: expected a whole number\n  - unknown setting "x"');
  t.same(err.problems, ['coapPort: expected a whole number', 'unknown setting "x"']);
  t.equal(err.code, 'GW_ERR_CONFIG');
  t.equal(err.name, 'ConfigError');
  t.equal(err.httpStatus, 400);
  t.equal(err.exitCode, 2);
  t.ok(err instanceof OperatorError);
});

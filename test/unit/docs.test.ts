import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { HTTP_TO_COAP } from '../../gateway/src/bridge/index.ts';
import { ERROR_TABLE } from '../../gateway/src/errors.ts';
import {
  ACCESS_TOKEN_OPTION, AuthRequestKey, AuthResponseKey, ErrorKey, NONCE_BYTES, Paths, REFRESH_TOKEN_BYTES, TokenFormat, WireError,
} from '../../gateway/src/wire/index.ts';

// The guides are the contract firmware, backend and operations teams read: they must say what the
// code does.
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const wireContract = read('gateway/docs/wire-contract.md');
const backendGuide = read('gateway/docs/backend-guide.md');
const operatorGuide = read('gateway/docs/operator-guide.md');

t.test('the wire contract lists every wire error code with the CoAP code the gateway sends', async (t) => {
  const rows = new Map<number, string>();
  for (const m of wireContract.matchAll(/^\| (\d{1,2}) \| (\d\.\d\d) \|/gm)) rows.set(Number(m[1]), m[2]!);
  const sent = new Map<number, Set<string>>();
  for (const { wire, coap } of Object.values(ERROR_TABLE)) sent.set(wire, (sent.get(wire) ?? new Set()).add(coap));
  t.same([...rows.keys()].sort((a, b) => a - b), Object.values(WireError).sort((a, b) => a - b), 'one row per wire code');
  for (const [wire, coaps] of sent) t.same([...coaps], [rows.get(wire)], `wire code ${wire}`);
});

t.test('the backend guide\'s status mapping matches the bridge table', async (t) => {
  const documented = new Map<number, string>();
  for (const m of backendGuide.matchAll(/\| (\d{3}(?:, \d{3})*) \| (\d\.\d\d)/g)) {
    for (const status of m[1]!.split(', ')) documented.set(Number(status), m[2]!);
  }
  for (const [status, coap] of HTTP_TO_COAP) t.equal(documented.get(status), coap, `HTTP ${status}`);
});

t.test('the wire contract states the option number and the CBOR keys of the code', async (t) => {
  t.match(wireContract, new RegExp(`number ${ACCESS_TOKEN_OPTION}`));
  t.match(wireContract, `{${AuthRequestKey.deviceId}: device id (text), ${AuthRequestKey.secret}: secret (bytes)}`);
  t.match(wireContract, `{${AuthRequestKey.deviceId}: device id, ${AuthRequestKey.assertion}: assertion (text`);
  t.match(wireContract, `{${AuthRequestKey.refreshToken}: refresh token (bytes)}`);
  t.match(wireContract, `optional \`${AuthRequestKey.tokenFormat}: token format\` (${TokenFormat.jwt} JWT, ${TokenFormat.cwt} CWT)`);
  t.match(wireContract, `{${AuthResponseKey.accessToken}: access token (text: a JWT; bytes: a CWT), ${AuthResponseKey.expiresInSec}: expires_in s, `
    + `${AuthResponseKey.refreshToken}: refresh token (${REFRESH_TOKEN_BYTES} bytes), ${AuthResponseKey.serverTimeSec}: server time s}`);
  t.match(wireContract, `| \`${Paths.nonce}\` | POST |`);
  t.match(wireContract, `{${AuthResponseKey.nonce}: nonce (${NONCE_BYTES} bytes), ${AuthResponseKey.serverTimeSec}: server time s}`);
  t.match(wireContract, `{${ErrorKey.code}: wire error code, ${ErrorKey.serverTimeSec}: server time s}`);
});

t.test('the operator guide\'s metrics table names every metric the gateway exposes', async (t) => {
  const { createMetrics } = await import('../../gateway/src/admin/metrics.ts');
  const metrics = createMetrics(() => undefined);
  const names = (await metrics.registry.getMetricsAsJSON()).map((m) => m.name);
  t.ok(names.length > 10, `${names.length} metrics`);
  for (const name of names) t.match(operatorGuide, `\`${name}\``, name);
});

import { readFile } from 'node:fs/promises';
import type { DevicePrivateJwk } from './device-assertion.ts';
import { SimError } from './errors.ts';
import { DeviceOscoreContext } from './oscore-context.ts';

/** One provisioned device as the simulator knows it: a secret, a private key, an OSCORE context, or several. */
export interface DeviceCredentials {
  id: string;
  /** The 32 random bytes `gateway devices add` printed (as hex) once; absent for a device that has only a key. */
  secret?: Buffer;
  /** The device's own private key (`gateway devices add --key-type ES256|EdDSA`), for assertion logins. */
  privateJwk?: DevicePrivateJwk;
  /**
   * The device's side of its OSCORE context (`gateway devices add --oscore`), keys derived and
   * with its Sender Sequence Number: every client opened with it continues the same count.
   */
  oscore?: DeviceOscoreContext;
}

/** A device that can log in with a secret. */
export type SecretCredentials = DeviceCredentials & { secret: Buffer };

const HEX = /^(?:[0-9a-f]{2})+$/i;
const MAX_PROBLEMS_SHOWN = 10;

/**
 * Reads the provisioning file `gateway devices add --count N --out FILE` writes:
 * `[{"id": "sim-0001", "secret": "<hex>", "privateJwk": {kty, crv, x, y, d, kid, alg},
 * "oscore": {"senderId", "recipientId", "masterSecret", "masterSalt"} (hex)}, ...]`
 * (`privateJwk` with `--key-type`, `oscore` with `--oscore`; `secret` may be absent for a
 * device that has only a key). Every problem is reported with its index.
 */
export async function readDevicesFile(file: string): Promise<DeviceCredentials[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new SimError('SIM_ERR_DEVICES_FILE', `cannot read devices file ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'}); `
      + 'make one with `gateway devices add --count N --prefix sim- --out devices.json` (add `--key-type ES256` for devices with keys)', { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new SimError('SIM_ERR_DEVICES_FILE', `devices file ${file} is not JSON: ${(err as Error).message}`, { cause: err });
  }
  return parseDevices(parsed, file);
}

export function parseDevices(parsed: unknown, where: string): DeviceCredentials[] {
  if (!Array.isArray(parsed) || parsed.length === 0) {
    throw new SimError('SIM_ERR_DEVICES_FILE', `${where}: expected a non-empty JSON array of {id, secret, privateJwk}`);
  }
  const problems: string[] = [];
  const seen = new Set<string>();
  const devices: DeviceCredentials[] = [];
  parsed.forEach((entry: unknown, i) => {
    const { id, secret, privateJwk, oscore } = (entry ?? {}) as { id?: unknown; secret?: unknown; privateJwk?: unknown; oscore?: unknown };
    const before = problems.length;
    if (typeof id !== 'string' || id === '') problems.push(`[${i}].id: expected a device id string`);
    else if (seen.has(id)) problems.push(`[${i}].id: "${id}" appears twice`);
    if (secret !== undefined && (typeof secret !== 'string' || !HEX.test(secret))) problems.push(`[${i}].secret: expected the device secret as hex`);
    if (privateJwk !== undefined && !isPrivateJwk(privateJwk)) {
      problems.push(`[${i}].privateJwk: expected a private JWK, an object with kty and d`);
    }
    let context: DeviceOscoreContext | undefined;
    if (oscore !== undefined) {
      const problem = oscoreProblem(oscore);
      if (problem !== undefined) problems.push(`[${i}].oscore: ${problem}`);
      else context = DeviceOscoreContext.fromHex(oscore as OscoreHex);
    }
    if (secret === undefined && privateJwk === undefined && oscore === undefined) {
      problems.push(`[${i}]: neither a secret, a privateJwk nor an oscore context: the device cannot authenticate`);
    }
    if (problems.length > before) return;
    seen.add(id as string);
    devices.push({
      id: id as string,
      ...(secret !== undefined ? { secret: Buffer.from(secret as string, 'hex') } : {}),
      ...(privateJwk !== undefined ? { privateJwk: privateJwk as DevicePrivateJwk } : {}),
      ...(context !== undefined ? { oscore: context } : {}),
    });
  });
  if (problems.length > 0) throw new SimError('SIM_ERR_DEVICES_FILE', `${where}: ${listProblems(problems)}`);
  return devices;
}

/**
 * The devices that lack what `credential` names, as one message for a scenario that needs it
 * ('sim-003, sim-007 and 12 more have no secret'), or undefined when every device has it.
 */
export function missingCredential(devices: readonly DeviceCredentials[], credential: 'secret' | 'privateJwk' | 'oscore'): string | undefined {
  const lacking = devices.filter((d) => d[credential] === undefined).map((d) => d.id);
  if (lacking.length === 0) return undefined;
  const shown = lacking.slice(0, MAX_PROBLEMS_SHOWN).join(', ');
  const more = lacking.length > MAX_PROBLEMS_SHOWN ? ` and ${lacking.length - MAX_PROBLEMS_SHOWN} more` : '';
  const what = { secret: 'secret', privateJwk: 'private key (privateJwk)', oscore: 'OSCORE context (oscore)' }[credential];
  return `${lacking.length} of ${devices.length} devices have no ${what}: ${shown}${more}`;
}

interface OscoreHex { senderId: string; recipientId: string; masterSecret: string; masterSalt: string }

const HEX_OR_EMPTY = /^(?:[0-9a-f]{2})*$/i;

/** What is wrong with an `oscore` entry, or undefined: four hex strings, the device's Sender ID not empty, the two ids different. */
function oscoreProblem(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'expected {senderId, recipientId, masterSecret, masterSalt} as hex';
  const fields = value as Record<string, unknown>;
  const bad = (['senderId', 'recipientId', 'masterSecret', 'masterSalt'] as const)
    .filter((name) => typeof fields[name] !== 'string' || !HEX_OR_EMPTY.test(fields[name] as string));
  if (bad.length > 0) return `${bad.join(', ')}: expected hex`;
  const { senderId, recipientId, masterSecret } = fields as unknown as OscoreHex;
  if (senderId === '') return 'senderId: the device\'s Sender ID is never empty';
  if (senderId.toLowerCase() === recipientId.toLowerCase()) return 'senderId and recipientId must differ';
  if (masterSecret === '') return 'masterSecret: empty';
  // RFC 8613 section 3.3: an id longer than the nonce allows (7 bytes for AES-CCM-16-64-128) cannot be used.
  if (senderId.length > 14 || recipientId.length > 14) return 'senderId and recipientId are at most 7 bytes';
  return undefined;
}

function isPrivateJwk(value: unknown): value is DevicePrivateJwk {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const { kty, d } = value as { kty?: unknown; d?: unknown };
  return typeof kty === 'string' && kty !== '' && typeof d === 'string' && d !== '';
}

function listProblems(problems: string[]): string {
  const shown = problems.slice(0, MAX_PROBLEMS_SHOWN);
  if (problems.length > shown.length) shown.push(`... and ${problems.length - shown.length} more`);
  return `${problems.length} problem(s):\n  - ${shown.join('\n  - ')}`;
}

import { readFile } from 'node:fs/promises';
import { SimError } from './errors.ts';

/** One provisioned device as the simulator knows it. */
export interface DeviceCredentials {
  id: string;
  /** The 32 random bytes `gateway devices add` printed (as hex) once. */
  secret: Buffer;
}

const HEX = /^(?:[0-9a-f]{2})+$/i;

/**
 * Reads the provisioning file `gateway devices add --count N --out FILE` writes:
 * `[{"id": "sim-0001", "secret": "<hex>"}, ...]`. Every problem is reported with its index.
 */
export async function readDevicesFile(file: string): Promise<DeviceCredentials[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new SimError('SIM_ERR_DEVICES_FILE', `cannot read devices file ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'}); `
      + 'make one with `gateway devices add --count N --prefix sim- --out devices.json`', { cause: err });
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
    throw new SimError('SIM_ERR_DEVICES_FILE', `${where}: expected a non-empty JSON array of {id, secret}`);
  }
  const problems: string[] = [];
  const seen = new Set<string>();
  const devices: DeviceCredentials[] = [];
  parsed.forEach((entry: unknown, i) => {
    const { id, secret } = (entry ?? {}) as { id?: unknown; secret?: unknown };
    if (typeof id !== 'string' || id === '') problems.push(`[${i}].id: expected a device id string`);
    else if (seen.has(id)) problems.push(`[${i}].id: "${id}" appears twice`);
    if (typeof secret !== 'string' || !HEX.test(secret)) problems.push(`[${i}].secret: expected the device secret as hex`);
    if (typeof id === 'string' && typeof secret === 'string' && HEX.test(secret)) {
      seen.add(id);
      devices.push({ id, secret: Buffer.from(secret, 'hex') });
    }
  });
  if (problems.length > 0) {
    const shown = problems.slice(0, 10);
    if (problems.length > shown.length) shown.push(`... and ${problems.length - shown.length} more`);
    throw new SimError('SIM_ERR_DEVICES_FILE', `${where}: ${problems.length} problem(s):\n  - ${shown.join('\n  - ')}`);
  }
  return devices;
}

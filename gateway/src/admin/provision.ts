import { DEVICE_ID_PATTERN, SCOPE_PATTERN, generateSecret, hashSecret, newRecordId } from '../auth/index.ts';
import { AdminError } from '../errors.ts';
import type { DeviceRecord, Store } from '../store/index.ts';

export interface ProvisionedDevice {
  id: string;
  /** Hex of the 32 random bytes: shown once, only its hash is stored. */
  secret: string;
  scopes: string[];
}

/** Provisions devices (all or none), for the CLI and the admin API alike. */
export async function provisionDevices(store: Store, ids: readonly string[], scopes: readonly string[]): Promise<ProvisionedDevice[]> {
  const cleanScopes = validScopes(scopes);
  const createdAt = new Date().toISOString();
  const devices = ids.map((id) => ({ id: validDeviceId(id), secret: generateSecret() }));
  const records: DeviceRecord[] = devices.map((d) => ({
    id: d.id, secretHash: hashSecret(d.secret), scopes: cleanScopes, createdAt, recordId: newRecordId(),
  }));
  await store.devices.add(records);
  return devices.map((d) => ({ id: d.id, secret: d.secret.toString('hex'), scopes: cleanScopes }));
}

export async function removeDevice(store: Store, id: string): Promise<void> {
  if (!(await store.devices.remove(validDeviceId(id)))) throw new AdminError('GW_ERR_ADMIN_UNKNOWN_DEVICE', `no device "${id}"`);
}

export function validDeviceId(id: unknown): string {
  if (typeof id !== 'string' || !DEVICE_ID_PATTERN.test(id)) {
    throw new AdminError('GW_ERR_ADMIN_BAD_DEVICE_ID',
      `bad device id ${JSON.stringify(id)}: use 1-64 letters, digits and . _ : -, starting with a letter or digit`);
  }
  return id;
}

/** Accepts scopes as a list, or space/comma separated. */
export function validScopes(scopes: readonly unknown[]): string[] {
  const flat = scopes.flatMap((s) => (typeof s === 'string' ? s.split(/[\s,]+/) : [String(s)])).filter(Boolean);
  const bad = flat.filter((s) => !SCOPE_PATTERN.test(s));
  if (flat.length === 0 || bad.length > 0) {
    throw new AdminError('GW_ERR_ADMIN_BAD_SCOPE', `bad scope(s): ${bad.join(', ') || '(none given)'}`);
  }
  return [...new Set(flat)];
}

/** Every device, as the CLI and the admin API list them (never a secret hash). */
export async function listDevices(store: Store): Promise<{ id: string; scopes: string[]; createdAt: string }[]> {
  const list: { id: string; scopes: string[]; createdAt: string }[] = [];
  for await (const batch of store.devices.list()) {
    for (const { id, scopes, createdAt } of batch) list.push({ id, scopes, createdAt });
  }
  return list.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

import { generateSecret, hashSecret, newRecordId } from '../auth/index.ts';
import { AdminError } from '../errors.ts';
import { MAX_DEVICE_KEYS, type DeviceKey, type DeviceRecord, type Store } from '../store/index.ts';
import { DEVICE_ID, JTI, SCOPES, TOKEN_FORMAT, parseAdmin } from './admin-fields.ts';

export interface ProvisionedDevice {
  id: string;
  /** Hex of the 32 random bytes: shown once, only its hash is stored. Absent for a device with keys only. */
  secret?: string;
  scopes: string[];
  /** The public keys it was provisioned with (their kids). */
  kids?: string[];
  tokenFormat?: 'jwt' | 'cwt';
}

export interface ProvisionOptions {
  /** Public keys per device (at most MAX_DEVICE_KEYS each, distinct kids). */
  keys?: (id: string) => readonly DeviceKey[] | Promise<readonly DeviceKey[]>;
  /** Make a secret too (default: only when the device gets no key). A device gets a secret, keys, or both. */
  secret?: boolean;
  /** The access-token format of a login that does not ask for one; absent: JWT. */
  tokenFormat?: unknown;
}

/** Provisions devices (all or none), for the CLI and the admin API alike. */
export async function provisionDevices(store: Store, ids: readonly string[], scopes: readonly string[], options: ProvisionOptions = {})
  : Promise<ProvisionedDevice[]> {
  const cleanScopes = validScopes(scopes);
  const tokenFormat = validTokenFormat(options.tokenFormat);
  const createdAt = new Date().toISOString();
  const devices: { id: string; keys: DeviceKey[]; secret: Buffer | undefined }[] = [];
  for (const given of ids) {
    const id = validDeviceId(given);
    const keys = [...(await options.keys?.(id) ?? [])];
    if (keys.length > MAX_DEVICE_KEYS) throw new AdminError('GW_ERR_ADMIN_TOO_MANY_KEYS', `at most ${MAX_DEVICE_KEYS} keys per device, "${id}" was given ${keys.length}`);
    const kids = new Set(keys.map((k) => k.kid));
    if (kids.size < keys.length) throw new AdminError('GW_ERR_ADMIN_DUPLICATE_KEY', `device "${id}" was given the same key twice`);
    const withSecret = options.secret ?? keys.length === 0;
    if (!withSecret && keys.length === 0) throw new TypeError('provisionDevices: a device needs a secret or a key');
    devices.push({ id, keys, secret: withSecret ? generateSecret() : undefined });
  }
  const records: DeviceRecord[] = devices.map((d) => ({
    id: d.id, scopes: cleanScopes, createdAt, recordId: newRecordId(),
    ...(d.secret !== undefined ? { secretHash: hashSecret(d.secret) } : {}),
    ...(d.keys.length > 0 ? { keys: d.keys } : {}),
    ...(tokenFormat !== undefined ? { tokenFormat } : {}),
  }));
  await store.devices.add(records);
  return devices.map((d) => ({
    id: d.id, scopes: cleanScopes,
    ...(tokenFormat !== undefined ? { tokenFormat } : {}),
    ...(d.secret !== undefined ? { secret: d.secret.toString('hex') } : {}),
    ...(d.keys.length > 0 ? { kids: d.keys.map((k) => k.kid) } : {}),
  }));
}

/** Retries of a read-modify-write that lost a race with another writer of the same device. */
const UPDATE_ATTEMPTS = 5;

/**
 * Changes one device's record by `change` (which throws to refuse), compare-and-set: another
 * writer of the same device meanwhile (a second CLI, another gateway's admin API) makes it read
 * and try again.
 */
async function updateDevice(store: Store, id: string, change: (record: DeviceRecord) => DeviceRecord): Promise<DeviceRecord> {
  const deviceId = validDeviceId(id);
  for (let attempt = 0; attempt < UPDATE_ATTEMPTS; attempt += 1) {
    const current = await store.devices.get(deviceId);
    if (current === undefined) throw new AdminError('GW_ERR_ADMIN_UNKNOWN_DEVICE', `no device "${deviceId}"`);
    const next = change(current);
    if (await store.devices.replace(current, next)) return next;
  }
  throw new AdminError('GW_ERR_ADMIN_CONFLICT', `device "${deviceId}" kept changing under ${UPDATE_ATTEMPTS} attempts: try again`);
}

export interface DeviceKeyView {
  kid: string;
  alg: DeviceKey['alg'];
  addedAt: string;
  expiresAt?: string;
}

const keyView = ({ kid, alg, addedAt, expiresAt }: DeviceKey): DeviceKeyView => ({ kid, alg, addedAt, ...(expiresAt ? { expiresAt } : {}) });

export async function addDeviceKey(store: Store, id: string, key: DeviceKey): Promise<DeviceKeyView> {
  await updateDevice(store, id, (record) => {
    const keys = record.keys ?? [];
    if (keys.some((k) => k.kid === key.kid)) throw new AdminError('GW_ERR_ADMIN_DUPLICATE_KEY', `device "${id}" has key "${key.kid}" already`);
    if (keys.length >= MAX_DEVICE_KEYS) {
      throw new AdminError('GW_ERR_ADMIN_TOO_MANY_KEYS', `device "${id}" has ${MAX_DEVICE_KEYS} keys, the most it may hold: remove one first`);
    }
    return { ...record, keys: [...keys, key] };
  });
  return keyView(key);
}

export async function listDeviceKeys(store: Store, id: string): Promise<DeviceKeyView[]> {
  const record = await store.devices.get(validDeviceId(id));
  if (record === undefined) throw new AdminError('GW_ERR_ADMIN_UNKNOWN_DEVICE', `no device "${id}"`);
  return (record.keys ?? []).map(keyView);
}

export async function removeDeviceKey(store: Store, id: string, kid: string): Promise<void> {
  await updateDevice(store, id, (record) => {
    const keys = record.keys ?? [];
    if (!keys.some((k) => k.kid === kid)) throw new AdminError('GW_ERR_ADMIN_UNKNOWN_KEY', `device "${id}" has no key "${String(kid).slice(0, 64)}"`);
    const rest = keys.filter((k) => k.kid !== kid);
    if (rest.length === 0 && record.secretHash === undefined) {
      throw new AdminError('GW_ERR_ADMIN_LAST_CREDENTIAL', `key "${kid}" is device "${id}"'s only credential: add another key first, or remove the device`);
    }
    const { keys: _old, ...without } = record;
    return rest.length > 0 ? { ...without, keys: rest } : without;
  });
}

/**
 * Every token issued to the device before now stops verifying, and its refresh tokens stop
 * refreshing: the record gets a new id, which tokens carry as `rid`. The device may log in again.
 */
export async function revokeDevice(store: Store, id: string): Promise<void> {
  await updateDevice(store, id, (record) => ({ ...record, recordId: newRecordId() }));
}

/** A disabled device can neither log in nor refresh, and its tokens are refused, until enabled. */
export async function setDeviceDisabled(store: Store, id: string, disabled: boolean): Promise<void> {
  await updateDevice(store, id, (record) => {
    const { disabled: _old, ...rest } = record;
    return disabled ? { ...rest, disabled: true } : rest;
  });
}

/** Revokes one access token by its jti until `untilSec`, when it could no longer verify anyway. */
export async function revokeToken(store: Store, jti: unknown, untilSec: number): Promise<void> {
  if (!Number.isSafeInteger(untilSec)) throw new TypeError('revokeToken: untilSec must be whole seconds since the epoch');
  const nowSec = Math.floor(Date.now() / 1000);
  await store.revocations.revokeToken({ kind: 'token', jti: parseAdmin(JTI, jti), atSec: nowSec, untilSec });
}

export async function removeDevice(store: Store, id: string): Promise<void> {
  if (!(await store.devices.remove(validDeviceId(id)))) throw new AdminError('GW_ERR_ADMIN_UNKNOWN_DEVICE', `no device "${id}"`);
}

export const validDeviceId = (id: unknown): string => parseAdmin(DEVICE_ID, id);

/** `jwt` or `cwt` (a device's default access-token format), or undefined. */
export const validTokenFormat = (value: unknown): 'jwt' | 'cwt' | undefined => (value === undefined ? undefined : parseAdmin(TOKEN_FORMAT, value));

/** Scopes as a list, or space/comma separated. */
export const validScopes = (scopes: unknown): string[] => parseAdmin(SCOPES, scopes);

export interface DeviceListing {
  id: string;
  scopes: string[];
  createdAt: string;
  /** Whether it can log in with a secret. */
  secret: boolean;
  keys: { kid: string; alg: DeviceKey['alg']; expiresAt?: string }[];
  disabled?: true;
  /** Set only when provisioned with one (JWT otherwise). */
  tokenFormat?: 'jwt' | 'cwt';
}

/** Every device, as the CLI and the admin API list them (never a secret hash, never key material). */
export async function listDevices(store: Store): Promise<DeviceListing[]> {
  const list: DeviceListing[] = [];
  for await (const batch of store.devices.list()) {
    for (const { id, scopes, createdAt, secretHash, keys, disabled, tokenFormat } of batch) {
      list.push({
        id, scopes, createdAt, secret: secretHash !== undefined,
        keys: (keys ?? []).map(({ kid, alg, expiresAt }) => ({ kid, alg, ...(expiresAt ? { expiresAt } : {}) })),
        ...(disabled === true ? { disabled } : {}),
        ...(tokenFormat !== undefined ? { tokenFormat } : {}),
      });
    }
  }
  return list.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

import { generateSecret, hashSecret, newRecordId } from '../auth/index.ts';
import { AdminError } from '../errors.ts';
import { MAX_DEVICE_KEYS, type DeviceKey, type DeviceOscore, type DeviceRecord, type Store } from '../store/index.ts';
import { DEVICE_ID, JTI, SCOPES, SECURITY, TOKEN_FORMAT, parseAdmin } from './admin-fields.ts';
import {
  newOscoreContext, oscoreProvisioned, type AiocoapSettings, type OscoreCredentials, type OscoreProvisioned,
} from './oscore-contexts.ts';

export interface ProvisionedDevice {
  id: string;
  /** Hex of the 32 random bytes: shown once, only its hash is stored. Absent for a device with keys only. */
  secret?: string;
  scopes: string[];
  /** The public keys it was provisioned with (their kids). */
  kids?: string[];
  tokenFormat?: 'jwt' | 'cwt';
  /** Its OSCORE context from the device's side (hex): shown once, as the secret is. */
  oscore?: OscoreCredentials;
  /** The same context as aiocoap's settings.json (the device's side). */
  aiocoap?: AiocoapSettings;
  security?: 'oscore';
}

export interface ProvisionOptions {
  /** Public keys per device (at most MAX_DEVICE_KEYS each, distinct kids). */
  keys?: (id: string) => readonly DeviceKey[] | Promise<readonly DeviceKey[]>;
  /** Make a secret too (default: only when the device gets no key). A device gets a secret, keys, or both. */
  secret?: boolean;
  /** The access-token format of a login that does not ask for one; absent: JWT. */
  tokenFormat?: unknown;
  /** Make each device an OSCORE context (a secret then only when asked for, or with no key either: the context is a credential). */
  oscore?: boolean;
  /** `oscore`: refused without OSCORE (needs `oscore`); `any` or absent: either way. */
  security?: unknown;
}

/** Provisions devices (all or none), for the CLI and the admin API alike. */
export async function provisionDevices(store: Store, ids: readonly string[], scopes: readonly string[], options: ProvisionOptions = {})
  : Promise<ProvisionedDevice[]> {
  const cleanScopes = validScopes(scopes);
  const tokenFormat = validTokenFormat(options.tokenFormat);
  const security = validSecurity(options.security);
  const withOscore = options.oscore === true;
  if (security === 'oscore' && !withOscore) {
    throw new AdminError('GW_ERR_ADMIN_BAD_BODY', 'security "oscore" refuses the device without OSCORE: it needs an OSCORE context too (--oscore, or "oscore": true)');
  }
  const now = new Date();
  const createdAt = now.toISOString();
  const devices: { id: string; keys: DeviceKey[]; secret: Buffer | undefined; oscore?: DeviceOscore }[] = [];
  for (const given of ids) {
    const id = validDeviceId(given);
    const keys = [...(await options.keys?.(id) ?? [])];
    if (keys.length > MAX_DEVICE_KEYS) throw new AdminError('GW_ERR_ADMIN_TOO_MANY_KEYS', `at most ${MAX_DEVICE_KEYS} keys per device, "${id}" was given ${keys.length}`);
    const kids = new Set(keys.map((k) => k.kid));
    if (kids.size < keys.length) throw new AdminError('GW_ERR_ADMIN_DUPLICATE_KEY', `device "${id}" was given the same key twice`);
    const withSecret = options.secret ?? (keys.length === 0 && !withOscore);
    if (!withSecret && keys.length === 0 && !withOscore) throw new TypeError('provisionDevices: a device needs a secret, a key or an OSCORE context');
    devices.push({ id, keys, secret: withSecret ? generateSecret() : undefined });
  }
  if (withOscore) {
    // Taken before the add: ids an add then refuses (a duplicate device) stay spent, as any removed device's do.
    const senderIds = await store.devices.allocateSenderIds(devices.length);
    devices.forEach((d, i) => { d.oscore = newOscoreContext(senderIds[i]!, now); });
  }
  const records: DeviceRecord[] = devices.map((d) => ({
    id: d.id, scopes: cleanScopes, createdAt, recordId: newRecordId(),
    ...(d.secret !== undefined ? { secretHash: hashSecret(d.secret) } : {}),
    ...(d.keys.length > 0 ? { keys: d.keys } : {}),
    ...(tokenFormat !== undefined ? { tokenFormat } : {}),
    ...(d.oscore !== undefined ? { oscore: d.oscore } : {}),
    ...(security === 'oscore' ? { security } : {}),
  }));
  await store.devices.add(records);
  return devices.map((d) => ({
    id: d.id, scopes: cleanScopes,
    ...(tokenFormat !== undefined ? { tokenFormat } : {}),
    ...(d.secret !== undefined ? { secret: d.secret.toString('hex') } : {}),
    ...(d.keys.length > 0 ? { kids: d.keys.map((k) => k.kid) } : {}),
    ...(d.oscore !== undefined ? withoutDevice(oscoreProvisioned(d.id, d.oscore)) : {}),
    ...(security === 'oscore' ? { security } : {}),
  }));
}

const withoutDevice = ({ device: _device, ...rest }: OscoreProvisioned): Omit<OscoreProvisioned, 'device'> => rest;

export interface OscoreOptions {
  /** Replace the context the device has (a new secret, salt and generation; the same Sender ID). */
  rotate?: boolean;
  /** `oscore`: refuse the device without OSCORE; `any`: either way; absent: unchanged. */
  security?: unknown;
}

export interface OscoreOutcome {
  /** The new context, to show once; absent when only `security` changed. */
  made?: OscoreProvisioned;
  /** An existing context was replaced: the device needs the new one. */
  rotated: boolean;
  security: 'oscore' | undefined;
}

/**
 * Makes a device an OSCORE context: a new one when it has none, a replacement with `rotate` (its
 * old one stops working on every gateway as the change reaches it; the Sender ID stays). A device
 * that has one is refused without `rotate` (AdminError GW_ERR_ADMIN_CONFLICT), unless only
 * `security` is given, which then changes only that.
 */
export async function setDeviceOscore(store: Store, id: string, options: OscoreOptions = {}): Promise<OscoreOutcome> {
  const deviceId = validDeviceId(id);
  const security = validSecurity(options.security);
  const rotate = options.rotate === true;
  const current = await store.devices.get(deviceId);
  if (current === undefined) throw new AdminError('GW_ERR_ADMIN_UNKNOWN_DEVICE', `no device "${deviceId}"`);
  const securityOnly = current.oscore !== undefined && !rotate && security !== undefined;
  const refuse = (senderId: string) => new AdminError('GW_ERR_ADMIN_CONFLICT',
    `device "${deviceId}" has an OSCORE context already (Sender ID ${senderId}): --rotate (or "rotate": true) replaces it, `
    + 'and the device then needs the new one; --security alone changes only whether OSCORE is required');
  if (current.oscore !== undefined && !rotate && !securityOnly) throw refuse(current.oscore.senderId);
  let context: DeviceOscore | undefined;
  if (!securityOnly) {
    const senderId = current.oscore?.senderId ?? (await store.devices.allocateSenderIds(1))[0]!;
    context = newOscoreContext(senderId);
  }
  let replaced = false;
  const next = await updateDevice(store, deviceId, (record) => {
    if (context === undefined) {
      if (record.oscore === undefined) throw new AdminError('GW_ERR_ADMIN_STATE', `device "${deviceId}" has no OSCORE context any more: make one first`);
      return withSecurity(record, security);
    }
    if (record.oscore !== undefined && !rotate) throw refuse(record.oscore.senderId);
    replaced = record.oscore !== undefined;
    // A device keeps its Sender ID: one it got meanwhile (another writer) wins over the one taken here.
    return withSecurity({ ...record, oscore: { ...context, senderId: record.oscore?.senderId ?? context.senderId } }, security);
  });
  return {
    ...(context !== undefined ? { made: oscoreProvisioned(deviceId, next.oscore!) } : {}),
    rotated: replaced,
    security: next.security,
  };
}

function withSecurity(record: DeviceRecord, security: 'oscore' | 'any' | undefined): DeviceRecord {
  if (security === undefined) return record;
  const { security: _old, ...rest } = record;
  return security === 'oscore' ? { ...rest, security } : rest;
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
    if (rest.length === 0 && record.secretHash === undefined && record.oscore === undefined) {
      throw new AdminError('GW_ERR_ADMIN_LAST_CREDENTIAL', `key "${kid}" is device "${id}"'s only credential: add another key first, or remove the device`);
    }
    const { keys: _old, ...without } = record;
    return rest.length > 0 ? { ...without, keys: rest } : without;
  });
}

/**
 * Every token issued to the device before now stops verifying, and its refresh tokens stop
 * refreshing: the record gets a new id, which tokens carry as `rid`. Its OSCORE context, if it has
 * one, is dropped (it may have leaked with the rest): `setDeviceOscore` makes a new one. The device
 * may log in again. Resolves with the Sender ID of the context dropped, if any.
 */
export async function revokeDevice(store: Store, id: string): Promise<{ droppedOscore?: string }> {
  let dropped: string | undefined;
  await updateDevice(store, id, (record) => {
    const { oscore, ...rest } = record;
    dropped = oscore?.senderId;
    return { ...rest, recordId: newRecordId() };
  });
  return dropped !== undefined ? { droppedOscore: dropped } : {};
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

/** `oscore` or `any` (whether a device is refused without OSCORE), or undefined. */
export const validSecurity = (value: unknown): 'oscore' | 'any' | undefined => (value === undefined ? undefined : parseAdmin(SECURITY, value));

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
  /** Its OSCORE context, by Sender ID only: never the master secret or salt. */
  oscore?: { senderId: string; createdAt: string };
  /** Set when the device is refused without OSCORE. */
  security?: 'oscore';
}

/** Every device, as the CLI and the admin API list them (never a secret hash, never key material, never an OSCORE secret). */
export async function listDevices(store: Store): Promise<DeviceListing[]> {
  const list: DeviceListing[] = [];
  for await (const batch of store.devices.list()) {
    for (const { id, scopes, createdAt, secretHash, keys, disabled, tokenFormat, oscore, security } of batch) {
      list.push({
        id, scopes, createdAt, secret: secretHash !== undefined,
        keys: (keys ?? []).map(({ kid, alg, expiresAt }) => ({ kid, alg, ...(expiresAt ? { expiresAt } : {}) })),
        ...(disabled === true ? { disabled } : {}),
        ...(tokenFormat !== undefined ? { tokenFormat } : {}),
        ...(oscore !== undefined ? { oscore: { senderId: oscore.senderId, createdAt: oscore.createdAt } } : {}),
        ...(security === 'oscore' ? { security } : {}),
      });
    }
  }
  return list.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { buildFileStore, type FileStoreOptions } from '../../gateway/src/store/file/index.ts';
import type { DeviceRecord, PublishedKey, Store } from '../../gateway/src/store/ports.ts';

// What the store tests (both backends, and the contract suite run on each) put into a store and
// open it on. Values are derived from the id, so that two calls with one id compare equal.

/** A device record as the CLI provisions one, with `extra` fields over it. */
export const deviceRecord = (id: string, extra: Partial<DeviceRecord> = {}): DeviceRecord => ({
  id,
  secretHash: `hash-${id}`,
  scopes: ['telemetry:write'],
  createdAt: '2026-01-01T00:00:00.000Z',
  recordId: `rid-${id}`,
  ...extra,
});

/** A signing key's public half as a gateway publishes it (the JWK is not a real key: stores do not read it). */
export const publishedKey = (kid: string, state: PublishedKey['state']): PublishedKey => ({
  kid, alg: 'EdDSA', state, gateway: 'gw-a', createdAt: '2026-01-01T00:00:00.000Z', publicJwk: { kty: 'OKP', crv: 'Ed25519', x: 'x', kid },
});

/** A new empty directory under the system's temporary one, removed with everything in it after the test. */
export async function tempDir(t: Test, prefix = 'gw-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A file store on `dir`, closed after the test (before the directory is removed: teardowns run last first). */
export async function openFileStore(t: Test, dir: string, options?: FileStoreOptions): Promise<Store> {
  const store = await buildFileStore(dir, options);
  t.teardown(() => store.close());
  return store;
}

import type { Keystore, KeyMetadata } from '../auth/index.ts';
import type { SigningAlg } from '../config/index.ts';
import { AdminError } from '../errors.ts';
import type { PublishedKey, Store } from '../store/index.ts';

/**
 * One gateway's signing keys within the fleet. The private keys stay in this gateway's keystore
 * (its state directory); the store holds every gateway's public keys and their states, so each
 * gateway verifies what any other signed, and a retirement from anywhere reaches the holder.
 */
export interface FleetKeys {
  /** New active key here, published before it signs anything. */
  rotate(alg: SigningAlg): Promise<KeyMetadata>;
  /** Retires `kid` wherever it lives: here at once, elsewhere through the store. */
  retire(kid: string): Promise<void>;
  /**
   * Brings the two sides together: retirements made elsewhere retire this gateway's keys,
   * this gateway's key states are published, and the fleet's keys verify here. Single-flight:
   * a call during a run makes one more run.
   */
  sync(): Promise<void>;
  /** Every key of the fleet, this gateway's first (as it holds them now), then the others' from the store. */
  list(): Promise<PublishedKey[]>;
}

export function createFleetKeys(keystore: Keystore, store: Store): FleetKeys {
  let running: Promise<void> | undefined;
  let again = false;

  const syncOnce = async (): Promise<void> => {
    let published = await store.keys.list();
    const byKid = new Map(published.map((k) => [k.kid, k]));
    for (const key of keystore.list()) {
      if (byKid.get(key.kid)?.state === 'retired' && key.state === 'verifying') await keystore.retire(key.kid);
    }
    let changed = false;
    for (const mine of keystore.published()) {
      if (!samePublished(byKid.get(mine.kid), mine)) {
        await store.keys.publish(mine);
        changed = true;
      }
    }
    if (changed) published = await store.keys.list();
    keystore.setFleetKeys(published);
  };
  const sync = (): Promise<void> => {
    if (running !== undefined) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        await syncOnce();
      } while (again);
    })().finally(() => { running = undefined; });
    return running;
  };

  return {
    async rotate(alg) {
      const created = await keystore.rotate(alg);
      await sync();
      return created;
    },
    async retire(kid) {
      if (keystore.list().some((k) => k.kid === kid && k.state !== 'retired')) {
        await keystore.retire(kid);
        await sync();
        return;
      }
      if (!(await store.keys.retire(kid, new Date().toISOString()))) {
        throw new AdminError('GW_ERR_ADMIN_UNKNOWN_KEY', `no key with kid "${kid}" that is active or verifying`);
      }
    },
    sync,
    async list() {
      const mine = keystore.published();
      const others = (await store.keys.list()).filter((key) => !mine.some((own) => own.kid === key.kid));
      return [...mine, ...others];
    },
  };
}

function samePublished(a: PublishedKey | undefined, b: PublishedKey): boolean {
  return a !== undefined && a.state === b.state && a.verifyUntil === b.verifyUntil && a.gateway === b.gateway;
}

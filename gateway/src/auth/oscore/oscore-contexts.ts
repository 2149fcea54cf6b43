import type { DeviceRecord } from '../../store/index.ts';
import { deriveContext, type SecurityContext } from '../../wire/oscore/index.ts';

/** A device's context as the OSCORE layer takes it (coap/oscore-layer.ts `OscoreDevice`). */
export interface ResolvedContext {
  readonly deviceId: string;
  readonly generation: string;
  readonly scopes: ReadonlySet<string>;
  readonly context: SecurityContext;
}

/** What the resolver reads of the device view (store/device-view.ts). */
export interface DevicesBySender {
  peekSender(senderIdHex: string): DeviceRecord | undefined;
  getBySender(senderIdHex: string): Promise<DeviceRecord | undefined>;
}

export interface OscoreContextsOptions {
  devices: DevicesBySender;
  /** Derived contexts held at once (about 250 bytes each); past it the least recently used goes. */
  maxEntries: number;
  onEvicted?: () => void;
}

export interface OscoreContexts {
  /** The context a request's kid (the device's Sender ID) names, if an enabled device has it now. */
  contextOf(kid: Buffer): Promise<ResolvedContext | undefined>;
  /** Derived contexts held (a gauge). */
  size(): number;
}

/**
 * From a request's kid to the device's security context: the record through the device view
 * (which follows the change feed, so a rotated, removed or disabled device's context stops at
 * once), the keys derived once per context generation (RFC 8613 section 3.2: two HKDF calls of
 * about a microsecond each, kept for every request after). A record read each time means a
 * rotation needs no invalidation here: a new generation is a new entry, the old one ages out.
 */
export function createOscoreContexts(options: OscoreContextsOptions): OscoreContexts {
  const { devices, maxEntries } = options;
  const derived = new Map<string, ResolvedContext>();

  const resolved = (record: DeviceRecord): ResolvedContext | undefined => {
    const { oscore } = record;
    if (oscore === undefined || record.disabled === true) return undefined;
    const hit = derived.get(oscore.generation);
    // Same generation, same record: the scopes too may have changed (a replaced record), so compare them.
    if (hit !== undefined && hit.deviceId === record.id && sameScopes(hit.scopes, record.scopes)) {
      derived.delete(oscore.generation);
      derived.set(oscore.generation, hit);
      return hit;
    }
    const entry: ResolvedContext = {
      deviceId: record.id,
      generation: oscore.generation,
      scopes: new Set(record.scopes),
      // The gateway's side: it sends as the context's Recipient ID (the device's view) and receives from the device's Sender ID.
      context: deriveContext({
        masterSecret: Buffer.from(oscore.masterSecret, 'base64url'),
        masterSalt: Buffer.from(oscore.masterSalt, 'base64url'),
        senderId: Buffer.from(oscore.recipientId, 'hex'),
        recipientId: Buffer.from(oscore.senderId, 'hex'),
      }),
    };
    derived.delete(oscore.generation);
    if (derived.size >= maxEntries) {
      derived.delete(derived.keys().next().value!);
      options.onEvicted?.();
    }
    derived.set(oscore.generation, entry);
    return entry;
  };

  return {
    async contextOf(kid) {
      const hex = kid.toString('hex');
      const record = devices.peekSender(hex) ?? (await devices.getBySender(hex));
      return record === undefined || record.oscore?.senderId !== hex ? undefined : resolved(record);
    },
    size: () => derived.size,
  };
}

function sameScopes(held: ReadonlySet<string>, scopes: readonly string[]): boolean {
  return held.size === scopes.length && scopes.every((scope) => held.has(scope));
}

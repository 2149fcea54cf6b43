import { randomBytes } from 'node:crypto';
import type { DeviceOscore } from '../store/index.ts';

/** The one AEAD every context uses (COSE algorithm 10, RFC 8613 section 3.2's default). */
export const OSCORE_ALGORITHM = 'AES-CCM-16-64-128';
/** The one key derivation (section 3.2.1's default). */
export const OSCORE_KDF = 'HKDF-SHA-256';

/** A context from the device's side, as firmware holds it: every byte string in lower-case hex. */
export interface OscoreCredentials {
  /** The device's Sender ID: the kid of its requests. */
  senderId: string;
  /** The gateway's Sender ID: '' (an empty byte string). */
  recipientId: string;
  /** 16 bytes. */
  masterSecret: string;
  /** 8 bytes. */
  masterSalt: string;
  algorithm: typeof OSCORE_ALGORITHM;
  kdf: typeof OSCORE_KDF;
}

/**
 * The device's side as the settings.json of an aiocoap OSCORE context directory (aiocoap's
 * FilesystemSecurityContext: `_hex` keys are byte strings in hex; its defaults are HKDF-SHA-256,
 * a replay window of 32 and no ID Context, as here).
 */
export interface AiocoapSettings {
  'sender-id_hex': string;
  'recipient-id_hex': string;
  'secret_hex': string;
  'salt_hex': string;
  algorithm: typeof OSCORE_ALGORITHM;
}

/** What provisioning prints once: the context for firmware, and the same as aiocoap reads it. */
export interface OscoreProvisioned {
  device: string;
  oscore: OscoreCredentials;
  aiocoap: AiocoapSettings;
}

/** The part of a devices file (`devices add --count --oscore --out`) the simulator reads: hex. */
export type OscoreFileEntry = Pick<OscoreCredentials, 'senderId' | 'recipientId' | 'masterSecret' | 'masterSalt'>;

/**
 * A new context for the device with Sender ID `senderId`: a random 16-byte master secret and
 * 8-byte master salt (section 3.3: the secret must be unique per context, and random from a CSPRNG
 * here), the gateway's Sender ID '' and a new generation.
 */
export function newOscoreContext(senderId: string, now = new Date()): DeviceOscore {
  return {
    senderId,
    recipientId: '',
    masterSecret: randomBytes(16).toString('base64url'),
    masterSalt: randomBytes(8).toString('base64url'),
    generation: randomBytes(12).toString('base64url'),
    createdAt: now.toISOString(),
  };
}

const hex = (base64url: string): string => Buffer.from(base64url, 'base64url').toString('hex');

export function oscoreFileEntry({ senderId, recipientId, masterSecret, masterSalt }: OscoreCredentials): OscoreFileEntry {
  return { senderId, recipientId, masterSecret, masterSalt };
}

export function oscoreProvisioned(device: string, context: DeviceOscore): OscoreProvisioned {
  const { senderId, recipientId } = context;
  const masterSecret = hex(context.masterSecret);
  const masterSalt = hex(context.masterSalt);
  return {
    device,
    oscore: { senderId, recipientId, masterSecret, masterSalt, algorithm: OSCORE_ALGORITHM, kdf: OSCORE_KDF },
    aiocoap: {
      'sender-id_hex': senderId, 'recipient-id_hex': recipientId, 'secret_hex': masterSecret, 'salt_hex': masterSalt, algorithm: OSCORE_ALGORITHM,
    },
  };
}

import { createHash } from 'node:crypto';
import {
  MAX_SEQUENCE_NUMBER, deriveContext, protectRequest, unprotectResponse,
  type CoapMessage, type ProtectedRequest, type RequestBinding, type SecurityContext,
} from '../../gateway/src/wire/oscore/index.ts';

/**
 * What `gateway devices add --oscore` writes beside a device's secret, all hex: the device's
 * Sender ID (never empty), the gateway's (its Recipient ID: '' for every device), the 16-byte
 * master secret and the 8-byte master salt. No ID Context (RFC 8613 section 3.1).
 */
export interface OscoreHexCredentials {
  senderId: string;
  recipientId: string;
  masterSecret: string;
  masterSalt: string;
}

/**
 * Where a device keeps its Sender Sequence Number across restarts (RFC 8613 Appendix B.1.1):
 * numbers below what `reserve` stored may have been used, so a restarted device starts there.
 */
export interface SequenceStore {
  /** The first number a context may use: 0 for one never seen. */
  start(key: string): number;
  /** Stores that numbers below `upTo` may be in use; resolves once that would survive a crash. */
  reserve(key: string, upTo: number): Promise<void>;
}

/** Numbers reserved at once in a SequenceStore: one write per this many requests of a device. */
export const SEQUENCE_RESERVE_STEP = 256;

/** Why a device stops: its context has used every Sender Sequence Number (section 7.2.1) and must be replaced. */
export class SequenceExhaustedError extends Error {
  readonly code = 'OSCORE_SEQUENCE_EXHAUSTED';

  constructor() {
    super('OSCORE: every sender sequence number of this context is used; provision a new context (gateway devices oscore ID --rotate)');
    this.name = 'SequenceExhaustedError';
  }
}

/**
 * The device's side of its OSCORE security context: the keys (derived once, RFC 8613 section
 * 3.2) and its Sender Sequence Number, which starts at 0, grows by one per request and is never
 * used twice (a retransmission is the same datagram, so it reuses nothing). The number lives
 * here, with the context, so that every client and every run of one process that uses these
 * credentials continues it; with a SequenceStore it continues across processes too.
 */
export class DeviceOscoreContext {
  readonly context: SecurityContext;
  /** Names this context (a digest of its input, never of a key): new when the context is rotated. */
  readonly key: string;
  #next = 0;
  #reservedUntil = Infinity;
  #store: SequenceStore | undefined;
  #reserving: Promise<void> | undefined;

  constructor(input: { senderId: Buffer; recipientId: Buffer; masterSecret: Buffer; masterSalt: Buffer }) {
    if (input.senderId.length === 0) throw new TypeError('a device\'s OSCORE Sender ID is never empty (the gateway\'s is)');
    // The device sends as its Sender ID and receives from the gateway's (section 3.1).
    this.context = deriveContext(input);
    this.key = createHash('sha256').update(input.masterSecret).update(input.masterSalt).update(input.senderId).digest('hex').slice(0, 16);
  }

  /** From the hex of a devices file; TypeError for a value that is not hex. */
  static fromHex(hex: OscoreHexCredentials): DeviceOscoreContext {
    const bytes = (name: keyof OscoreHexCredentials) => {
      const value = hex[name];
      if (typeof value !== 'string' || !/^(?:[0-9a-f]{2})*$/i.test(value)) throw new TypeError(`oscore.${name}: expected hex`);
      return Buffer.from(value, 'hex');
    };
    return new DeviceOscoreContext({
      senderId: bytes('senderId'), recipientId: bytes('recipientId'), masterSecret: bytes('masterSecret'), masterSalt: bytes('masterSalt'),
    });
  }

  /** The number the next request will use. */
  get nextSequenceNumber(): number {
    return this.#next;
  }

  /**
   * Keeps the sequence number in `store` from now on: continues from what it holds (never
   * lower than what this process has used) and reserves numbers ahead in steps.
   */
  persistIn(store: SequenceStore): void {
    this.#next = Math.max(this.#next, store.start(this.key));
    this.#store = store;
    this.#reservedUntil = this.#next;
  }

  /** Stores the exact next number (at the end of a run), so that the reserved rest is not skipped next time. */
  async saveExact(): Promise<void> {
    if (this.#store === undefined) return;
    // Nothing may take a number while this runs: it lowers the reservation to what is used.
    await this.#reserving;
    this.#reservedUntil = this.#next;
    await this.#store.reserve(this.key, this.#next);
  }

  /**
   * A sequence number of its own for one request: taken at once (two requests in flight never
   * share one), and with a store only returned once the store has it reserved.
   */
  async take(): Promise<number> {
    const n = this.#next;
    if (n > MAX_SEQUENCE_NUMBER) throw new SequenceExhaustedError();
    this.#next = n + 1;
    while (n >= this.#reservedUntil) {
      if (this.#reserving === undefined) {
        const upTo = Math.min(this.#next + SEQUENCE_RESERVE_STEP, MAX_SEQUENCE_NUMBER + 1);
        this.#reserving = this.#store!.reserve(this.key, upTo).then(() => {
          this.#reservedUntil = Math.max(this.#reservedUntil, upTo);
        }).finally(() => { this.#reserving = undefined; });
      }
      await this.#reserving;
    }
    return n;
  }

  /** RFC 8613 section 8.1 under `sequenceNumber` (from take()). */
  protect(sequenceNumber: number, message: CoapMessage): ProtectedRequest {
    return protectRequest(this.context, sequenceNumber, message);
  }

  /** Section 8.4: the answer to the request `binding` names; throws OscoreError when it does not verify. */
  unprotect(binding: RequestBinding, oscoreOptionValue: Buffer, payload: Buffer): CoapMessage {
    return unprotectResponse(this.context, binding, oscoreOptionValue, payload);
  }
}

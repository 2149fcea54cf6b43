/** A provisioned device. Only a hash of its secret is ever stored. */
export interface DeviceRecord {
  id: string;
  /** base64url SHA-256 of the device's 32-byte secret. */
  secretHash: string;
  scopes: string[];
  /** ISO 8601. */
  createdAt: string;
  /**
   * Random (16 bytes, base64url), made when the device is provisioned; tokens carry it as `rid`,
   * so removing a device and adding it again refuses its old tokens. Older state files have
   * none: such a record counts as `legacy:${createdAt}` (see `recordIdOf`).
   */
  recordId?: string;
}

/**
 * The small shared state of one or many gateways. The file-backed store serves one gateway and
 * the CLI on the same state directory; a fleet implementation (Redis) keeps the same contract,
 * checked by the same contract test suite.
 */
export interface Store {
  getDevice(id: string): DeviceRecord | undefined;
  listDevices(): DeviceRecord[];
  deviceCount(): number;
  /** Adds all or none; throws AdminError on a duplicate id. */
  addDevices(records: readonly DeviceRecord[]): Promise<void>;
  /** Returns false when there was no such device. */
  removeDevice(id: string): Promise<boolean>;
  /**
   * Marks a one-use token id as spent. Returns false when it was spent already. Entries may be
   * forgotten after `expiresAtSec`, which callers set to when the token stops verifying
   * (its exp plus the leeway).
   */
  consumeOnce(id: string, expiresAtSec: number): Promise<boolean>;
  /** Re-reads what another process (the CLI) changed; called by the watcher. */
  reload(): Promise<void>;
  /** Calls `listener` after a reload that changed the device registry. */
  onChange(listener: () => void): void;
  close(): Promise<void>;
}

export {
  MAX_DEVICE_KEYS, MAX_FAMILIES_PER_DEVICE, STORE_RETRY_AFTER_SEC, StoreUnavailableError,
  type DeviceKey, type DeviceOscore, type DeviceRecord, type OscoreWindows, type WindowVerdict, type NonceEntry, type Nonces, type RefreshFamily, type RefreshFamilies, type Revocation,
  type RotateOutcome, type TokenRevocation, type DeviceRegistry, type FamilyRevocation, type LimiterOptions, type Limits, type OneTimeIds,
  type PublicKeys, type PublishedKey, type PublishedKeyState, type Revocations, type Store, type StoreChange, type StoreKind,
} from './ports.ts';
export { MAX_SEQUENCE_NUMBER, REPLAY_WINDOW_SIZE, emptyWindow, slideWindow, windowAt, type ReplayWindow } from './replay-window.ts';
export { SENDER_ID_COUNTERS, counterOfSenderId, isSenderIdHex, senderIdOfCounter } from './sender-ids.ts';
export { createDeviceView, type DeviceView, type DeviceViewOptions } from './device-view.ts';
export { openStore, type OpenStoreOptions } from './open-store.ts';
export { buildFileStore, forEachLimited } from './file/index.ts';
export { DEFAULT_MAX_OSCORE_WINDOWS } from './file/oscore-windows-file.ts';
export { formatMode, logTightened, STATE_DIR_MODE, tightenStateDir, type StateDirTightened } from './state-dir-mode.ts';
export { writeFileAtomic, readJsonIfExists } from './atomic-file.ts';
export { watchStateDir } from './watch-state-dir.ts';
export { RateLimiterMemory, RateLimiterRes } from './rate-limiter-memory.ts';

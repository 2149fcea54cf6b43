export type { DeviceRecord, Store } from './store.ts';
export { buildFileStore, type FileStoreOptions } from './file-store.ts';
export { formatMode, logTightened, STATE_DIR_MODE, tightenStateDir, type StateDirTightened } from './state-dir-mode.ts';
export { writeFileAtomic, readJsonIfExists } from './atomic-file.ts';
export { watchStateDir } from './watch-state-dir.ts';

export type { DeviceRecord, Store } from './store.ts';
export { buildFileStore } from './file-store.ts';
export { writeFileAtomic, readJsonIfExists } from './atomic-file.ts';
export { watchStateDir } from './watch-state-dir.ts';

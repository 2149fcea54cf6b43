export { buildFileStore, type FileStoreOptions } from './build-file-store.ts';
export { bucketOf, DEFAULT_BUCKET_COUNT, forEachLimited } from './device-buckets.ts';
export { JOURNAL_FILE } from './change-journal.ts';

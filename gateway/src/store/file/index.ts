export { buildFileStore, type FileStoreOptions } from './build-file-store.ts';
export { bucketOf, DEFAULT_BUCKET_COUNT } from './device-buckets.ts';
export { JOURNAL_FILE } from './change-journal.ts';

export { buildRedisStore, DEFAULT_REDIS_KEY_PREFIX, type RedisStoreOptions } from './build-redis-store.ts';
export { parseRedisUrl, type RedisTarget } from './redis-url.ts';

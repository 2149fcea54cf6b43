export { buildRedisStore, DEFAULT_REDIS_KEY_PREFIX, type RedisStoreOptions } from './build-redis-store.ts';
export { parseRedisUrl, readRedisUrl, REDIS_URL_FORMS, type RedisTarget, type RedisUrlReading } from './redis-url.ts';

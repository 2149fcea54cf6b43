export { buildRedisStore, type RedisStoreOptions } from './build-redis-store.ts';
export { parseRedisUrl, readRedisUrl, REDIS_URL_FORMS, type RedisTarget, type RedisUrlReading } from './redis-url.ts';

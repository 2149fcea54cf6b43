// rate-limiter-flexible's package entry loads every store it supports (Redis, Mongo, SQL, etcd...):
// about 10 MB of RSS in each gateway (measured). The gateway uses its memory store, so it loads just
// those modules; the types are the package's own.
import { createRequire } from 'node:module';
import type * as Flexible from 'rate-limiter-flexible';

const require = createRequire(import.meta.url);

export const RateLimiterMemory = require('rate-limiter-flexible/lib/RateLimiterMemory.js') as typeof Flexible.RateLimiterMemory;
export const RateLimiterRes = require('rate-limiter-flexible/lib/RateLimiterRes.js') as typeof Flexible.RateLimiterRes;
export type RateLimiterMemory = Flexible.RateLimiterMemory;
export type RateLimiterRes = Flexible.RateLimiterRes;

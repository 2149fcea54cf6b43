import type { Redis } from 'ioredis';

/**
 * The store's Lua scripts: each check-then-write is one atomic round trip, and the change it
 * makes is PUBLISHed from inside it, so a listener that hears a change can already read it.
 * Messages are made in TypeScript (`encodeChange`) and published as given. ioredis sends a
 * script's text once per connection (EVAL), then its SHA (EVALSHA).
 *
 * Pruning is bounded (PRUNE_BATCH entries a call) so no script holds Redis for long.
 */
const PRUNE_BATCH = 1000;

/** KEYS: devices hash. ARGV: channel, then (id, record JSON, message) for each device. Returns the first id that exists, or nil. */
const ADD_DEVICES = `
for i = 2, #ARGV, 3 do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then return ARGV[i] end
end
for i = 2, #ARGV, 3 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('PUBLISH', ARGV[1], ARGV[i + 2])
end
return false`;

/** KEYS: devices hash. ARGV: id, channel, message. Returns 1 when removed. */
const REMOVE_DEVICE = `
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1`;

/** Deletes up to PRUNE_BATCH members of zset KEYS[2] scored below `before`, and their fields in hash KEYS[1]. */
const pruneBelow = (before: string): string => `
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ${before}, 'LIMIT', 0, ${PRUNE_BATCH})) do
  redis.call('HDEL', KEYS[1], member)
  redis.call('ZREM', KEYS[2], member)
end`;

/** KEYS: revocations hash (family -> JSON), their untilSec zset. ARGV: family, JSON, untilSec, nowSec, channel, message. */
const REVOKE_FAMILY = `
${pruneBelow('ARGV[4]')}
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1`;

/** KEYS: revocations hash, untilSec zset. ARGV: nowSec. Returns the JSON of each revocation with untilSec > nowSec. */
const LIST_REVOCATIONS = `
local out = {}
for _, family in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf')) do
  local json = redis.call('HGET', KEYS[1], family)
  if json then out[#out + 1] = json end
end
return out`;

/**
 * KEYS: keys hash (kid -> JSON), zset of retired kids by retiredAt (ms).
 * ARGV: kid, JSON, retiredAt ms ('' unless retired), prune-before ms, channel, message.
 */
const PUBLISH_KEY = `
${pruneBelow('ARGV[4]')}
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
end
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1`;

/**
 * Compare-and-set: the caller read the key, decided, and sends the retired JSON. Returns 0 when
 * the key changed since (the caller reads again), 1 when retired.
 * KEYS: as PUBLISH_KEY. ARGV: kid, JSON read, retired JSON, retiredAt ms, prune-before ms, channel, message.
 */
const RETIRE_KEY = `
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('PUBLISH', ARGV[6], ARGV[7])
${pruneBelow('ARGV[5]')}
return 1`;

/** KEYS: as PUBLISH_KEY. ARGV: prune-before ms. Returns every key's JSON. */
const LIST_KEYS = `
${pruneBelow('ARGV[1]')}
return redis.call('HVALS', KEYS[1])`;

type ScriptArg = string | number;
export type Script<R> = (keys: readonly string[], args: readonly ScriptArg[]) => Promise<R>;

export interface StoreScripts {
  addDevices: Script<string | null>;
  removeDevice: Script<number>;
  revokeFamily: Script<number>;
  listRevocations: Script<string[]>;
  publishKey: Script<number>;
  retireKey: Script<number>;
  listKeys: Script<string[]>;
}

/** Registers the scripts on `client` (ioredis `defineCommand`) under a `gw` prefix, typed. */
export function defineStoreScripts(client: Redis): StoreScripts {
  const define = <R>(name: string, lua: string, numberOfKeys: number): Script<R> => {
    const command = `gw${name}`;
    client.defineCommand(command, { lua, numberOfKeys });
    // defineCommand adds a method ioredis's types cannot know of.
    const method = (client as unknown as Record<string, (args: ScriptArg[]) => Promise<R>>)[command]!;
    return (keys, args) => {
      if (keys.length !== numberOfKeys) throw new TypeError(`script ${name} takes ${numberOfKeys} keys`);
      // One array argument (ioredis flattens it): spreading 300,000 arguments of a bulk add into
      // a call would overflow the stack.
      return method.call(client, [...keys, ...args]);
    };
  };
  return {
    addDevices: define('AddDevices', ADD_DEVICES, 1),
    removeDevice: define('RemoveDevice', REMOVE_DEVICE, 1),
    revokeFamily: define('RevokeFamily', REVOKE_FAMILY, 2),
    listRevocations: define('ListRevocations', LIST_REVOCATIONS, 2),
    publishKey: define('PublishKey', PUBLISH_KEY, 2),
    retireKey: define('RetireKey', RETIRE_KEY, 2),
    listKeys: define('ListKeys', LIST_KEYS, 2),
  };
}

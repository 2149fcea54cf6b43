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

/** KEYS: devices hash. ARGV: id, the record's JSON as read, the next JSON, channel, message. Returns 1 when replaced. */
const REPLACE_DEVICE = `
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1`;

/**
 * KEYS: the family's key, its device's zset of families (scored by start, ms).
 * ARGV: family JSON, expiresAt ms, startedAt ms, family id, most families per device, prefix of family keys.
 * Ends the device's oldest families past the bound (and drops members whose key has expired).
 * The zset lives as long as the device's newest family. Family keys past the bound are named
 * from the zset inside the script: the store runs on one Redis, not a cluster.
 */
const START_FAMILY = `
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if redis.call('EXISTS', ARGV[6] .. member) == 0 then redis.call('ZREM', KEYS[2], member) end
end
while redis.call('ZCARD', KEYS[2]) > tonumber(ARGV[5]) do
  local oldest = redis.call('ZPOPMIN', KEYS[2])[1]
  redis.call('DEL', ARGV[6] .. oldest)
end
if redis.call('PTTL', KEYS[2]) < 0 then redis.call('PEXPIREAT', KEYS[2], ARGV[2]) else redis.call('PEXPIREAT', KEYS[2], ARGV[2], 'GT') end
return 1`;

/**
 * KEYS: the family's key. ARGV: presented hash, next hash, next expiresAt s, prefix of device zsets.
 * Returns {'unknown'}, {'reused', JSON} or {'rotated', next JSON}: the compare and the write are one step.
 */
const ROTATE_FAMILY = `
local json = redis.call('GET', KEYS[1])
if not json then return {'unknown'} end
local family = cjson.decode(json)
if family.currentHash ~= ARGV[1] then return {'reused', json} end
family.currentHash = ARGV[2]
family.expiresAtSec = tonumber(ARGV[3])
local out = cjson.encode(family)
local atMs = tonumber(ARGV[3]) * 1000
redis.call('SET', KEYS[1], out, 'PXAT', atMs)
local devices = ARGV[4] .. family.deviceId
if redis.call('EXISTS', devices) == 1 then redis.call('PEXPIREAT', devices, atMs, 'GT') end
return {'rotated', out}`;

/** Deletes up to PRUNE_BATCH members of zset KEYS[2] scored below `before`, and their fields in hash KEYS[1]. */
const pruneBelow = (before: string): string => `
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ${before}, 'LIMIT', 0, ${PRUNE_BATCH})) do
  redis.call('HDEL', KEYS[1], member)
  redis.call('ZREM', KEYS[2], member)
end`;

/** KEYS: revocations hash (`family:<id>` or `token:<jti>` -> JSON), their untilSec zset. ARGV: field, JSON, untilSec, nowSec, channel, message. */
const REVOKE = `
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
  replaceDevice: Script<number>;
  removeDevice: Script<number>;
  startFamily: Script<number>;
  rotateFamily: Script<string[]>;
  revoke: Script<number>;
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
    replaceDevice: define('ReplaceDevice', REPLACE_DEVICE, 1),
    removeDevice: define('RemoveDevice', REMOVE_DEVICE, 1),
    startFamily: define('StartFamily', START_FAMILY, 2),
    rotateFamily: define('RotateFamily', ROTATE_FAMILY, 1),
    revoke: define('Revoke', REVOKE, 2),
    listRevocations: define('ListRevocations', LIST_REVOCATIONS, 2),
    publishKey: define('PublishKey', PUBLISH_KEY, 2),
    retireKey: define('RetireKey', RETIRE_KEY, 2),
    listKeys: define('ListKeys', LIST_KEYS, 2),
  };
}

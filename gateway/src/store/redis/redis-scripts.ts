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

/**
 * KEYS: devices hash, OSCORE senders hash. ARGV: channel, window key prefix, window idle ms, then
 * (id, record JSON, message, Sender ID or '', context generation or '') for each device.
 * Returns nil when added, {'device', id} for the first id that exists, {'sender', Sender ID, its
 * device} for the first Sender ID another device holds. A new context's replay window starts empty.
 */
const ADD_DEVICES = `
for i = 4, #ARGV, 5 do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then return {'device', ARGV[i]} end
  if ARGV[i + 3] ~= '' then
    local holder = redis.call('HGET', KEYS[2], ARGV[i + 3])
    if holder then return {'sender', ARGV[i + 3], holder} end
  end
end
for i = 4, #ARGV, 5 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  if ARGV[i + 3] ~= '' then redis.call('HSET', KEYS[2], ARGV[i + 3], ARGV[i]) end
  if ARGV[i + 4] ~= '' then redis.call('SET', ARGV[2] .. ARGV[i + 4], '-1:0', 'PX', ARGV[3]) end
  redis.call('PUBLISH', ARGV[1], ARGV[i + 2])
end
return false`;

/**
 * What ends a context the record no longer has (rotated, dropped, removed): its replay window
 * goes, and its sender sequence counter is kept only RETIRED_SEQUENCE_KEEP_MS more (PEXPIRE: a
 * gateway still holding the context until the change reaches it must not start the counter over).
 */
const endContext = (generation: string, windowPrefix: string, sequencePrefix: string, keepMs: string): string => `
if ${generation} ~= '' then
  redis.call('DEL', ${windowPrefix} .. ${generation})
  redis.call('PEXPIRE', ${sequencePrefix} .. ${generation}, ${keepMs})
end`;

/**
 * KEYS: devices hash, OSCORE senders hash. ARGV: id, channel, message, window key prefix,
 * sequence key prefix, retired sequence keep ms. Returns 1 when removed. The record names its
 * context: the index entry and the context's keys go with it.
 */
const REMOVE_DEVICE = `
local json = redis.call('HGET', KEYS[1], ARGV[1])
if not json then return 0 end
local ok, record = pcall(cjson.decode, json)
local sender, generation = '', ''
if ok and type(record) == 'table' and type(record.oscore) == 'table' then
  if type(record.oscore.senderId) == 'string' then sender = record.oscore.senderId end
  if type(record.oscore.generation) == 'string' then generation = record.oscore.generation end
end
redis.call('HDEL', KEYS[1], ARGV[1])
if sender ~= '' and redis.call('HGET', KEYS[2], sender) == ARGV[1] then redis.call('HDEL', KEYS[2], sender) end
${endContext('generation', 'ARGV[4]', 'ARGV[5]', 'ARGV[6]')}
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1`;

/**
 * KEYS: devices hash, OSCORE senders hash. ARGV: id, the record's JSON as read, the next JSON,
 * channel, message, the read record's Sender ID and generation ('' for none), the next record's,
 * window key prefix, sequence key prefix, window idle ms, retired sequence keep ms.
 * Returns 1 when replaced, 0 when the record changed meanwhile, {'sender', its device} when the
 * next Sender ID is another device's. (The read record's ids come from the caller: the compare
 * makes them the stored record's.)
 */
const REPLACE_DEVICE = `
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
local oldSender, oldGeneration, newSender, newGeneration = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
if newSender ~= '' and newSender ~= oldSender then
  local holder = redis.call('HGET', KEYS[2], newSender)
  if holder and holder ~= ARGV[1] then return {'sender', holder} end
  redis.call('HSET', KEYS[2], newSender, ARGV[1])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if oldSender ~= '' and oldSender ~= newSender and redis.call('HGET', KEYS[2], oldSender) == ARGV[1] then redis.call('HDEL', KEYS[2], oldSender) end
if oldGeneration ~= newGeneration then
  ${endContext('oldGeneration', 'ARGV[10]', 'ARGV[11]', 'ARGV[13]')}
  if newGeneration ~= '' then redis.call('SET', ARGV[10] .. newGeneration, '-1:0', 'PX', ARGV[12]) end
end
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

/**
 * KEYS: the context's window (RFC 8613 section 7.4, size 32), `<highest>:<mask>`: bit i of the
 * mask is highest - 1 - i; highest -1 is a new context's empty window. ARGV: the request's sequence
 * number, window idle ms. Returns 'fresh' (recorded), 'replay' or 'unknown' (no window): one
 * check-and-set, so a datagram accepted by one gateway of the fleet is a replay on every other.
 * Lua numbers are doubles (exact to 2^53, and sequence numbers end at 2^40 - 1); Redis's bit
 * library works on 32-bit signed integers, which is what the mask is kept as (bit.tobit), and
 * masks its shift counts to 5 bits, so a shift of 32 or more is spelled out.
 */
const ACCEPT_SEQUENCE = `
local window = redis.call('GET', KEYS[1])
if not window then return 'unknown' end
local colon = string.find(window, ':', 1, true)
local highest = tonumber(string.sub(window, 1, colon - 1))
local mask = tonumber(string.sub(window, colon + 1))
local seq = tonumber(ARGV[1])
if seq > highest then
  local shift = seq - highest
  if highest < 0 or shift > 32 then mask = 0
  elseif shift == 32 then mask = bit.lshift(1, 31)
  else mask = bit.bor(bit.lshift(mask, shift), bit.lshift(1, shift - 1)) end
  highest = seq
else
  local below = highest - seq
  if below == 0 or below > 32 then return 'replay' end
  local b = bit.lshift(1, below - 1)
  if bit.band(mask, b) ~= 0 then return 'replay' end
  mask = bit.bor(mask, b)
end
redis.call('SET', KEYS[1], string.format('%.0f', highest) .. ':' .. string.format('%.0f', bit.tobit(mask)), 'PX', ARGV[2])
return 'fresh'`;

/**
 * KEYS: the context's sender sequence counter. ARGV: count, how many sequence numbers there are
 * (2^40). Returns the first of the block, or -1 (nothing taken) when the block would pass the last.
 */
const RESERVE_SEQUENCE = `
local first = tonumber(redis.call('GET', KEYS[1]) or '0')
if first + tonumber(ARGV[1]) > tonumber(ARGV[2]) then return -1 end
redis.call('INCRBY', KEYS[1], ARGV[1])
return first`;

type ScriptArg = string | number;
export type Script<R> = (keys: readonly string[], args: readonly ScriptArg[]) => Promise<R>;

export interface StoreScripts {
  addDevices: Script<string[] | null>;
  replaceDevice: Script<number | string[]>;
  removeDevice: Script<number>;
  startFamily: Script<number>;
  rotateFamily: Script<string[]>;
  revoke: Script<number>;
  listRevocations: Script<string[]>;
  publishKey: Script<number>;
  retireKey: Script<number>;
  listKeys: Script<string[]>;
  acceptSequence: Script<'fresh' | 'replay' | 'unknown'>;
  reserveSequence: Script<number>;
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
    addDevices: define('AddDevices', ADD_DEVICES, 2),
    replaceDevice: define('ReplaceDevice', REPLACE_DEVICE, 2),
    removeDevice: define('RemoveDevice', REMOVE_DEVICE, 2),
    startFamily: define('StartFamily', START_FAMILY, 2),
    rotateFamily: define('RotateFamily', ROTATE_FAMILY, 1),
    revoke: define('Revoke', REVOKE, 2),
    listRevocations: define('ListRevocations', LIST_REVOCATIONS, 2),
    publishKey: define('PublishKey', PUBLISH_KEY, 2),
    retireKey: define('RetireKey', RETIRE_KEY, 2),
    listKeys: define('ListKeys', LIST_KEYS, 2),
    acceptSequence: define('AcceptSequence', ACCEPT_SEQUENCE, 1),
    reserveSequence: define('ReserveSequence', RESERVE_SEQUENCE, 1),
  };
}

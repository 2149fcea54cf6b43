// CBOR decode of a reading, as the simulator sends it ({"celsius": 21.5, "seq": n} as a CBOR map),
// with the gateway's decoder settings; and the whole CBOR -> JSON step the bridge does per request.
// Best of a few rounds.
import { Decoder, Encoder } from 'cbor-x';
import { cborToJson } from '../../gateway/src/bridge/index.ts';
import { emitResult, flag, opsPerSec, say } from './lib.ts';

const ms = Number(flag('ms') ?? 500);
const rounds = Number(flag('rounds') ?? 3);
const reading = new Encoder({ mapsAsObjects: false, useRecords: false }).encode(new Map<string, number>([['celsius', 21.5], ['seq', 4711]]));
const decoder = new Decoder({ mapsAsObjects: false, useRecords: false });
let sink = 0;
let decode = 0;
let toJson = 0;
for (let round = 0; round < rounds; round += 1) {
  decode = Math.max(decode, await opsPerSec(() => { sink += (decoder.decode(reading) as Map<string, number>).size; }, ms, 10_000));
  toJson = Math.max(toJson, await opsPerSec(() => { sink += cborToJson(reading).length; }, ms, 10_000));
}
if (sink === 0) throw new Error('nothing decoded');
say(`CBOR decode of a ${reading.length}-byte reading: ${decode}/s; CBOR -> JSON (the bridge's step): ${toJson}/s (best of ${rounds})`);
emitResult({ cbor_decode_per_s: decode, cbor_to_json_per_s: toJson, reading_bytes: reading.length });

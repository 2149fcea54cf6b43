import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { parseDevices, readDevicesFile } from '../../device-sim/src/devices-file.ts';
import { DeviceOscoreContext, SEQUENCE_RESERVE_STEP, type SequenceStore } from '../../device-sim/src/oscore-context.ts';
import { openSequenceFile } from '../../device-sim/src/oscore-sequence-file.ts';
import { deriveContext, protectRequest, unprotectRequest, readOscoreOption } from '../../gateway/src/wire/oscore/index.ts';
import { tempDir } from '../helpers/store-fixtures.ts';

// The device's side of its OSCORE context as the simulator reads it from a devices file, and its
// Sender Sequence Number: never used twice, in one process or across them (RFC 8613 Appendix B.1.1).

const hex = (n: number) => randomBytes(n).toString('hex');
const oscoreEntry = (senderId = '01') => ({ senderId, recipientId: '', masterSecret: hex(16), masterSalt: hex(8) });

t.test('a devices file with oscore entries: the context derived, its keys those of the gateway\'s side', async (t) => {
  const entry = oscoreEntry('2a');
  const [device] = parseDevices([{ id: 'sim-1', secret: hex(32), oscore: { ...entry, aiocoap: { 'sender-id_hex': '2a' } } }], 'devices.json');
  const oscore = device!.oscore!;
  t.ok(oscore instanceof DeviceOscoreContext, 'a DeviceOscoreContext');
  t.same(oscore.context.senderId, Buffer.of(0x2a), 'the device sends as its Sender ID');
  t.same(oscore.context.recipientId, Buffer.alloc(0), 'and receives from the gateway\'s empty one');
  // The gateway's side, as it derives it from the same input: what one seals the other opens.
  const gateway = deriveContext({
    masterSecret: Buffer.from(entry.masterSecret, 'hex'), masterSalt: Buffer.from(entry.masterSalt, 'hex'),
    senderId: Buffer.alloc(0), recipientId: Buffer.of(0x2a),
  });
  const sealed = protectRequest(oscore.context, 0, { code: '0.01', options: [{ number: 11, value: Buffer.from('config') }], payload: Buffer.alloc(0) });
  const opened = unprotectRequest(gateway, readOscoreOption(sealed.outerOptions[0]!.value), sealed.payload);
  t.equal(opened.message.code, '0.01', 'the gateway opens what the device sealed');
  t.equal(device!.secret?.length, 32, 'the secret beside it');
  const [only] = parseDevices([{ id: 'sim-2', oscore: oscoreEntry() }], 'devices.json');
  t.ok(only!.oscore !== undefined && only!.secret === undefined, 'a device with a context and nothing else is valid (tokenless requests)');
});

t.test('a bad oscore entry is reported with its index and field', async (t) => {
  const bad = (oscore: unknown) => () => parseDevices([{ id: 'a', secret: hex(32) }, { id: 'b', secret: hex(32), oscore }], 'devices.json');
  t.throws(bad('x'), /\[1\]\.oscore: expected \{senderId, recipientId, masterSecret, masterSalt\} as hex/);
  t.throws(bad({ ...oscoreEntry(), masterSalt: 'zz' }), /\[1\]\.oscore: masterSalt: expected hex/);
  t.throws(bad({ ...oscoreEntry(), senderId: '' }), /Sender ID is never empty/);
  t.throws(bad({ ...oscoreEntry('00'), recipientId: '00' }), /senderId and recipientId must differ/);
  t.throws(bad({ ...oscoreEntry('0102030405060708') }), /at most 7 bytes/);
  t.throws(() => parseDevices([{ id: 'a' }], 'f'), /neither a secret, a privateJwk nor an oscore context/);
});

t.test('sequence numbers: taken one by one, never twice, even by requests in flight together', async (t) => {
  const context = DeviceOscoreContext.fromHex(oscoreEntry());
  const taken = await Promise.all(Array.from({ length: 100 }, () => context.take()));
  t.same([...taken].sort((a, b) => a - b), Array.from({ length: 100 }, (_, i) => i), '0 to 99, each once');
  t.equal(context.nextSequenceNumber, 100);
});

t.test('with a store: a number is used only once the store has it reserved, in steps', async (t) => {
  const reserved: number[] = [];
  let release: (() => void) | undefined;
  const store: SequenceStore = {
    start: () => 10,
    reserve: (_key, upTo) => new Promise((resolve) => { reserved.push(upTo); release = resolve; }),
  };
  const context = DeviceOscoreContext.fromHex(oscoreEntry());
  context.persistIn(store);
  t.equal(context.nextSequenceNumber, 10, 'continues from what the store holds');
  let got: number | undefined;
  const first = context.take().then((n) => { got = n; });
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(got, undefined, 'not handed out before the reservation is stored');
  t.same(reserved, [11 + SEQUENCE_RESERVE_STEP], 'one reservation, a step ahead');
  release!();
  await first;
  t.equal(got, 10);
  for (let i = 0; i < SEQUENCE_RESERVE_STEP; i += 1) await context.take();
  t.equal(reserved.length, 1, 'the step covers the next numbers without another write');
  const next = context.take();
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(reserved.length, 2, 'past it: the next reservation');
  release!();
  t.equal(await next, 11 + SEQUENCE_RESERVE_STEP);
});

t.test('the sequence file: a second process continues where the first stopped, or past what it reserved if it crashed', async (t) => {
  const dir = await tempDir(t, 'device-oscore-seq-');
  const path = join(dir, 'devices.json.oscore-seq.json');
  const entry = oscoreEntry();

  const first = await openSequenceFile(path);
  const a = DeviceOscoreContext.fromHex(entry);
  a.persistIn(first);
  for (let i = 0; i < 5; i += 1) await a.take();
  await a.saveExact();
  await first.close();
  const stored = JSON.parse(await readFile(path, 'utf8')) as { version: number; next: Record<string, number> };
  t.same(stored, { version: 1, next: { [a.key]: 5 } }, 'the exact next number, by context key');

  // A crash: numbers taken, the exact one never saved.
  const second = await openSequenceFile(path);
  const b = DeviceOscoreContext.fromHex(entry);
  b.persistIn(second);
  t.equal(await b.take(), 5, 'the next process continues at 5');
  await second.close();

  const third = await openSequenceFile(path);
  const c = DeviceOscoreContext.fromHex(entry);
  c.persistIn(third);
  t.ok(c.nextSequenceNumber > 5, `after a crash: past every number that may have been used (${c.nextSequenceNumber})`);
  const rotated = DeviceOscoreContext.fromHex({ ...entry, masterSecret: hex(16) });
  rotated.persistIn(third);
  t.equal(rotated.nextSequenceNumber, 0, 'a new context (rotated) starts at 0');
  await third.close();

  await writeFile(path, '{"version": 2}');
  await t.rejects(openSequenceFile(path), { code: 'SIM_ERR_DEVICES_FILE' }, 'a file that is not one is refused');
});

t.test('readDevicesFile reads oscore entries from the file', async (t) => {
  const dir = await tempDir(t, 'device-oscore-file-');
  const file = join(dir, 'devices.json');
  await writeFile(file, JSON.stringify([{ id: 'sim-1', secret: hex(32), oscore: oscoreEntry('05') }]));
  const [device] = await readDevicesFile(file);
  t.same(device?.oscore?.context.senderId, Buffer.of(5));
});
